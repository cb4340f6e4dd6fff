"""Sharded preprocess + merge_shards: byte-identical to one process for any N, refused when shards disagree."""
import filecmp
import gzip
import json
import os
import shutil
from pathlib import Path

import pytest

from dataset import merge_shards, preprocess
from dataset.indexed_dataset import IndexedDataset
from dataset.preprocess_manifest import manifest_path, read_manifest
from dataset.shard_plan import ShardSpec, boundary, plan_shard, shard_prefix, shards_folder

ROLES = ("inputs", "targets")


@pytest.fixture
def corpus(fork_dir, tmp_path):
    """Three inputs: a plain file, a gzip file (never cut inside) and a plain file with CRLF and blank lines."""
    a = tmp_path / "in" / "a.jsonl"
    a.parent.mkdir()
    shutil.copy(fork_dir / "sample.jsonl", a)
    b = tmp_path / "in" / "b.jsonl.gz"
    b.write_bytes(gzip.compress((fork_dir / "sample2.jsonl").read_bytes()))
    lines = (fork_dir / "sample2.jsonl").read_bytes().split(b"\n")
    c = tmp_path / "in" / "c.jsonl"
    c.write_bytes(b"\r\n".join(lines[:60]) + b"\r\n\n" + b"\n".join(lines[60:]))
    return [str(a), str(b), str(c)]


def _flags(fork_dir, inputs, prefix, *extra):
    return ["--input", *inputs, "--tokenizer", str(fork_dir / "tokenizer.json"), "--output-prefix", str(prefix),
            "--workers", "1", *map(str, extra)]


def _outputs(prefix, with_valid):
    prefixes = [str(prefix)] + ([f"{prefix}_valid"] if with_valid else [])
    return [f"{p}_{role}_document.{ext}" for p in prefixes for role in ROLES for ext in ("bin", "idx")]


def _sharded(fork_dir, inputs, prefix, count, *extra):
    for index in range(count):
        assert preprocess.main(_flags(fork_dir, inputs, prefix, *extra, "--num-shards", count,
                                      "--shard-index", index)) == 0
    return merge_shards.main(["--output-prefix", str(prefix), "--num-shards", str(count)])


@pytest.mark.parametrize("extra", [(), ("--valid-fraction", 0.1, "--valid-seed", 5)], ids=["all", "heldout"])
def test_merge_is_byte_identical_to_one_process_for_any_number_of_shards(fork_dir, tmp_path, corpus, extra):
    single = tmp_path / "single" / "ds"
    assert preprocess.main(_flags(fork_dir, corpus, single, *extra)) == 0
    reference = read_manifest(manifest_path(str(single)))
    for count in (1, 2, 3, 7):
        prefix = tmp_path / f"n{count}" / "ds"
        assert _sharded(fork_dir, corpus, prefix, count, *extra) == 0
        for ours, theirs in zip(_outputs(prefix, bool(extra)), _outputs(single, bool(extra))):
            assert filecmp.cmp(ours, theirs, shallow=False), f"N={count}: {ours} differs from {theirs}"
        merged = read_manifest(manifest_path(str(prefix)))
        for key in ("records_in", "records_written", "skipped", "blank_lines"):
            assert merged[key] == reference[key], (count, key)
        assert merged["outputs"]["train"]["tokens"] == reference["outputs"]["train"]["tokens"]
        assert [s["index"] for s in merged["shards"]] == list(range(count))
        assert {p["path"] for p in merged["pieces"]} == set(corpus)
        assert not list(prefix.parent.glob("**/*.tmp-*"))
    if extra:
        assert 0 < reference["outputs"]["valid"]["documents"] < reference["records_in"]


def test_shards_are_contiguous_near_equal_and_cut_at_line_starts(tmp_path):
    lines = [json.dumps({"inputs": "x" * (i % 97), "targets": "y"}).encode() for i in range(3000)]
    big = tmp_path / "big.jsonl"
    big.write_bytes(b"\n".join(lines) + b"\n")
    data = big.read_bytes()
    for count in (2, 3, 7, 50):
        pieces = [plan_shard([str(big)], ShardSpec(i, count)) for i in range(count)]
        flat = [p for shard in pieces for p in shard]
        assert flat[0].start == 0 and flat[-1].end == len(data)
        assert all(x.end == y.start for x, y in zip(flat, flat[1:]))
        assert all(p.start == 0 or data[p.start - 1:p.start] == b"\n" for p in flat)
        longest = max(map(len, lines)) + 1
        assert all(abs((p.end - p.start) - len(data) / count) <= longest for p in flat)
    gz = tmp_path / "z.jsonl.gz"
    gz.write_bytes(b"x" * 1000)
    assert boundary([str(big), str(gz)], [len(data), 1000], len(data) + 10) == len(data) + 1000
    assert boundary([str(big), str(gz)], [len(data), 1000], len(data)) == len(data)


def test_an_error_in_a_shard_names_the_line_in_its_file(fork_dir, tmp_path, capsys):
    lines = (fork_dir / "sample.jsonl").read_bytes().split(b"\n")
    lines[349] = b'{"inputs": "a", "targets": }'
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"\n".join(lines))
    code = preprocess.main(_flags(fork_dir, [str(bad)], tmp_path / "out" / "ds", "--num-shards", 2,
                                  "--shard-index", 1))
    assert code == 2 and f"{bad}:350:" in capsys.readouterr().err
    assert not shards_folder(str(tmp_path / "out" / "ds")).exists() or not list(
        shards_folder(str(tmp_path / "out" / "ds")).glob("**/*.idx"))


def test_skipped_records_are_counted_by_reason_across_shards(fork_dir, tmp_path):
    lines = (fork_dir / "sample.jsonl").read_bytes().split(b"\n")
    for i, bad in ((10, b"[1]"), (200, b'{"inputs": "a"}'), (390, b'{"inputs": "", "targets": "b"}')):
        lines[i] = bad
    data = tmp_path / "mixed.jsonl"
    data.write_bytes(b"\n".join(lines))
    single = tmp_path / "single" / "ds"
    assert preprocess.main(_flags(fork_dir, [str(data)], single, "--skip-invalid")) == 0
    prefix = tmp_path / "sharded" / "ds"
    assert _sharded(fork_dir, [str(data)], prefix, 3, "--skip-invalid") == 0
    merged, reference = (read_manifest(manifest_path(str(p))) for p in (prefix, single))
    assert merged["skipped"] == reference["skipped"] == {"empty_field": 1, "missing_key": 1, "not_an_object": 1}
    assert sorted(merged["skipped_examples"]) == sorted(reference["skipped_examples"])
    for ours, theirs in zip(_outputs(prefix, False), _outputs(single, False)):
        assert filecmp.cmp(ours, theirs, shallow=False)


def _three_shards(fork_dir, corpus, prefix, tokenizer=None, **different):
    for index in range(3):
        flags = _flags(fork_dir, corpus, prefix, "--num-shards", 3, "--shard-index", index)
        if index == 2 and tokenizer:
            flags[flags.index("--tokenizer") + 1] = str(tokenizer)
        if index == 2 and different:
            flags += [f"{k}={v}" for k, v in different.items()]
        assert preprocess.main(flags) == 0


def test_merge_refuses_a_missing_shard(fork_dir, tmp_path, corpus, capsys):
    prefix = str(tmp_path / "out" / "ds")
    _three_shards(fork_dir, corpus, prefix)
    manifest_path(shard_prefix(prefix, ShardSpec(1, 3))).unlink()  # as a shard killed before its manifest
    assert merge_shards.main(["--output-prefix", prefix, "--num-shards", "3"]) == 2
    err = capsys.readouterr().err
    assert "shard 1 of 3 is missing or unfinished" in err and "--shard-index 1" in err
    assert not list((tmp_path / "out").glob("ds_*"))
    assert merge_shards.main(["--output-prefix", prefix, "--num-shards", "4"]) == 2
    assert "shard 0 of 4 is missing" in capsys.readouterr().err


def test_merge_refuses_a_shard_from_another_tokenizer_or_settings(fork_dir, tmp_path, corpus, capsys):
    other = tmp_path / "other_tokenizer.json"
    other.write_text(json.dumps(json.loads((fork_dir / "tokenizer.json").read_text()), indent=1))
    prefix = str(tmp_path / "tok" / "ds")
    _three_shards(fork_dir, corpus, prefix, tokenizer=other)
    assert merge_shards.main(["--output-prefix", prefix, "--num-shards", "3"]) == 2
    err = capsys.readouterr().err
    assert "shard 2 of 3" in err and "another tokenizer (sha256)" in err
    assert not list((tmp_path / "tok").glob("ds_*"))

    prefix = str(tmp_path / "eod" / "ds")
    _three_shards(fork_dir, corpus, prefix, **{"data.append_eod": "true"})
    assert merge_shards.main(["--output-prefix", prefix, "--num-shards", "3"]) == 2
    assert "shard 2 of 3" in (err := capsys.readouterr().err) and "settings (append_eod)" in err


def test_valid_count_cannot_be_sharded_and_the_shard_index_comes_from_slurm(fork_dir, tmp_path, corpus, capsys,
                                                                            monkeypatch):
    prefix = tmp_path / "out" / "ds"
    assert preprocess.main(_flags(fork_dir, corpus, prefix, "--valid-count", 5, "--num-shards", 2,
                                  "--shard-index", 0)) == 2
    assert "--valid-fraction" in capsys.readouterr().err
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID", raising=False)
    assert preprocess.main(_flags(fork_dir, corpus, prefix, "--num-shards", 2)) == 2
    assert "--shard-index" in capsys.readouterr().err
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    assert preprocess.main(_flags(fork_dir, corpus, prefix, "--num-shards", 2)) == 0
    assert manifest_path(shard_prefix(str(prefix), ShardSpec(1, 2))).is_file()
    assert not manifest_path(shard_prefix(str(prefix), ShardSpec(0, 2))).exists()


def test_remove_shards_deletes_only_the_merged_shards(fork_dir, tmp_path, corpus):
    prefix = tmp_path / "out" / "ds"
    for index in range(2):
        assert preprocess.main(_flags(fork_dir, corpus, prefix, "--num-shards", 2, "--shard-index", index)) == 0
    assert merge_shards.main(["--output-prefix", str(prefix), "--num-shards", "2", "--remove-shards"]) == 0
    assert not shards_folder(str(prefix)).exists()
    assert len(IndexedDataset(f"{prefix}_inputs_document")) == 400 + 150 + 150


def test_merge_refuses_a_shard_whose_files_changed_after_its_manifest(fork_dir, tmp_path, corpus, capsys):
    prefix = str(tmp_path / "out" / "ds")
    _three_shards(fork_dir, corpus, prefix)
    part = shard_prefix(prefix, ShardSpec(0, 3))
    shutil.copy(f"{shard_prefix(prefix, ShardSpec(1, 3))}_targets_document.bin", f"{part}_targets_document.bin")
    shutil.copy(f"{shard_prefix(prefix, ShardSpec(1, 3))}_targets_document.idx", f"{part}_targets_document.idx")
    assert merge_shards.main(["--output-prefix", prefix, "--num-shards", "3"]) == 2
    assert "shard 0 of 3" in (err := capsys.readouterr().err) and "changed since" in err
    assert not list((tmp_path / "out").glob("ds_*"))


def test_merge_refuses_shards_cut_from_two_versions_of_an_input_edited_in_place(fork_dir, tmp_path, capsys):
    source = tmp_path / "in" / "a.jsonl"
    source.parent.mkdir()
    shutil.copy(fork_dir / "sample.jsonl", source)
    prefix = str(tmp_path / "out" / "ds")
    shard = lambda index: preprocess.main(_flags(fork_dir, [str(source)], prefix, "--num-shards", 2,
                                                 "--shard-index", index))
    assert shard(0) == 0
    # edit a record inside shard 0's range in place: same size, so the plan and the coverage still agree
    data = source.read_bytes()
    at = data.index(b'"targets": "') + len(b'"targets": "')
    edited = data[:at] + (b"Z" if data[at:at + 1] != b"Z" else b"Y") + data[at + 1:]
    source.write_bytes(edited)
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 10**9))  # a later edit
    assert len(edited) == len(data) and shard(1) == 0
    assert merge_shards.main(["--output-prefix", prefix, "--num-shards", "2"]) == 2
    err = capsys.readouterr().err
    assert "shard 0 of 2" in err and str(source) in err and "edited while the shards were made" in err, err
    assert not list((tmp_path / "out").glob("ds_*"))
    # touched only (another time, the same bytes): every piece still hashes as recorded, so the merge goes on
    source.write_bytes(data)
    assert shard(1) == 0 and merge_shards.main(["--output-prefix", prefix, "--num-shards", "2"]) == 0


@pytest.mark.parametrize("damage", ["cut", "a list", "no pieces", "pieces without sha256"])
def test_a_damaged_shard_manifest_is_one_clear_refusal(fork_dir, tmp_path, corpus, capsys, damage):
    prefix = str(tmp_path / "out" / "ds")
    for index in range(2):
        assert preprocess.main(_flags(fork_dir, corpus, prefix, "--num-shards", 2, "--shard-index", index)) == 0
    path = manifest_path(shard_prefix(prefix, ShardSpec(1, 2)))
    manifest = json.loads(path.read_text())
    if damage == "no pieces":
        del manifest["shard"]["pieces"]
    if damage == "pieces without sha256":
        del manifest["shard"]["pieces"][0]["sha256"]
    text = {"cut": path.read_text()[:200], "a list": "[]\n"}.get(damage, json.dumps(manifest))
    path.write_text(text)
    assert merge_shards.main(["--output-prefix", prefix, "--num-shards", "2"]) == 2
    err = capsys.readouterr().err
    assert f"shard 1 of 2: cannot read {path}" in err or f"shard 1 of 2: {path} is damaged" in err, err
    assert not list((tmp_path / "out").glob("ds_*"))


def test_empty_shards_and_the_user_space_copy_give_the_same_bytes(fork_dir, tmp_path, monkeypatch):
    tiny = tmp_path / "tiny.jsonl"
    tiny.write_bytes(b"\n".join((fork_dir / "sample2.jsonl").read_bytes().split(b"\n")[:3]) + b"\n")
    single = tmp_path / "single" / "ds"
    assert preprocess.main(_flags(fork_dir, [str(tiny)], single)) == 0

    def no_kernel_copy(*args):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr("os.copy_file_range", no_kernel_copy)
    prefix = tmp_path / "n5" / "ds"
    assert _sharded(fork_dir, [str(tiny)], prefix, 5) == 0
    shards = read_manifest(manifest_path(str(prefix)))["shards"]
    assert sorted(s["records_in"] for s in shards) == [0, 0, 1, 1, 1]
    for ours, theirs in zip(_outputs(prefix, False), _outputs(single, False)):
        assert filecmp.cmp(ours, theirs, shallow=False)


@pytest.mark.parametrize("count", [2, 3])
def test_raw_code_shards_merge_into_the_forks_content_dataset(tmp_path, count):
    """The single-key (content, EOD appended) mode shards and merges too: the merge is the fork's own file."""
    fim = Path(__file__).parent / "fixtures" / "fork_fim"
    prefix = str(tmp_path / "code")
    flags = ["--input", str(fim / "code.jsonl"), "--tokenizer", str(fim / "tokenizer.json"),
             "--output-prefix", prefix, "--keys", "content", "--append-eod", "--workers", "1",
             "--num-shards", str(count)]
    for index in range(count):
        assert preprocess.main([*flags, "--shard-index", str(index)]) == 0
    assert merge_shards.main(["--output-prefix", prefix, "--num-shards", str(count)]) == 0
    for ext in ("bin", "idx"):  # byte for byte the fork's tools/preprocess_data.py output (fixture README)
        assert filecmp.cmp(f"{prefix}_content_document.{ext}", fim / f"code_content_document.{ext}", shallow=False)
