"""``python -m dataset.preprocess`` reproduces the fork's ``tools/preprocess_data.py`` files byte for byte."""
import filecmp
import gzip
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from dataset.indexed_dataset import IndexedDataset
from dataset.preprocess import main
from dataset.preprocess_manifest import manifest_path, read_manifest
from guardrails.output_paths import claimed_outputs, prefix_claim

ROLES = ("inputs", "targets")


def _run(*args) -> int:
    return main([str(a) for a in args])


def _assert_same_files(out_prefix, fork_prefix):
    for role in ROLES:
        for ext in ("bin", "idx"):
            ours, fork = f"{out_prefix}_{role}_document.{ext}", f"{fork_prefix}_{role}_document.{ext}"
            assert filecmp.cmp(ours, fork, shallow=False), f"{ours} differs from the fork's {fork}"


@pytest.mark.parametrize("name", ["sample", "sample2"])
@pytest.mark.parametrize("workers", [1, 2])
def test_byte_identical_to_fork(fork_dir, tmp_path, name, workers):
    prefix = tmp_path / name
    assert _run("--input", fork_dir / f"{name}.jsonl", "--tokenizer", fork_dir / "tokenizer.json",
                "--output-prefix", prefix, "--workers", workers) == 0
    _assert_same_files(prefix, fork_dir / name)
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_manifest_counts_and_hashes(fork_dir, tmp_path):
    prefix = tmp_path / "data" / "sample"
    assert _run("--input", fork_dir / "sample.jsonl", "--tokenizer", fork_dir / "tokenizer.json",
                "--output-prefix", prefix) == 0
    m = read_manifest(manifest_path(prefix))
    sums = dict(line.split()[::-1] for line in (fork_dir / "SHA256SUMS").read_text().splitlines() if line.strip())
    assert m["inputs"][0]["sha256"] == sums["sample.jsonl"]
    assert m["tokenizer"]["sha256"] == sums["tokenizer.json"]
    assert m["tokenizer"]["eod_id"] == 0 and m["tokenizer"]["vocab_size"] == 8192 and m["dtype"] == "uint16"
    assert m["records_in"] == m["records_written"] == 400 and m["skipped"] == {} and m["blank_lines"] == 0
    assert m["outputs"]["train"]["tokens"] == {"inputs": 23033, "targets": 17636}  # the fixture README's counts
    assert set(m["timings_s"]) >= {"total", "commit"}


def test_gzip_crlf_bom_blank_lines_give_the_same_bytes(fork_dir, tmp_path):
    lines = (fork_dir / "sample.jsonl").read_bytes().split(b"\n")[:-1]
    messy = b"\xef\xbb\xbf" + b"\r\n".join(lines[:200]) + b"\r\n\n   \r\n" + b"\n".join(lines[200:]) + b"\n\n"
    (tmp_path / "messy.jsonl.gz").write_bytes(gzip.compress(messy))
    prefix = tmp_path / "sample"
    assert _run("--input", tmp_path / "messy.jsonl.gz", "--tokenizer", fork_dir / "tokenizer.json",
                "--output-prefix", prefix) == 0
    _assert_same_files(prefix, fork_dir / "sample")
    m = read_manifest(manifest_path(prefix))
    assert m["blank_lines"] == 3 and m["records_in"] == 400


def test_several_inputs_are_concatenated_in_order(fork_dir, tmp_path):
    prefix = tmp_path / "both"
    assert _run("--input", fork_dir / "sample.jsonl", fork_dir / "sample2.jsonl",
                "--tokenizer", fork_dir / "tokenizer.json", "--output-prefix", prefix) == 0
    for role in ROLES:
        ours = IndexedDataset(f"{prefix}_{role}_document")
        a, b = IndexedDataset(fork_dir / f"sample_{role}_document"), IndexedDataset(fork_dir / f"sample2_{role}_document")
        assert len(ours) == len(a) + len(b)
        assert np.array_equal(ours.sizes, np.concatenate([a.sizes, b.sizes]))
        assert np.array_equal(ours[400], b[0]) and np.array_equal(ours[399], a[399])


def test_append_eod_matches_an_independent_encoding(fork_dir, tmp_path):
    prefix = tmp_path / "eod"
    assert _run("--input", fork_dir / "sample2.jsonl", "--tokenizer", fork_dir / "tokenizer.json",
                "--output-prefix", prefix, "--append-eod") == 0
    tok = Tokenizer.from_file(str(fork_dir / "tokenizer.json"))
    eod = tok.token_to_id("<|endoftext|>")
    records = [json.loads(line) for line in (fork_dir / "sample2.jsonl").read_text(encoding="utf-8").split("\n") if line]
    for role in ROLES:
        ds = IndexedDataset(f"{prefix}_{role}_document")
        for i in (0, 77, 149):
            expected = tok.encode(records[i][role], add_special_tokens=False).ids + [eod]
            assert ds[i].tolist() == expected


def test_outputs_key_is_accepted_as_targets(fork_dir, tmp_path):
    lines = (fork_dir / "sample2.jsonl").read_text(encoding="utf-8").split("\n")[:-1]
    renamed = [json.dumps({"inputs": r["inputs"], "outputs": r["targets"]}, ensure_ascii=False)
               for r in map(json.loads, lines)]
    (tmp_path / "octopack.jsonl").write_text("\n".join(renamed) + "\n", encoding="utf-8")
    assert _run("--input", tmp_path / "octopack.jsonl", "--tokenizer", fork_dir / "tokenizer.json",
                "--output-prefix", tmp_path / "sample2") == 0
    _assert_same_files(tmp_path / "sample2", fork_dir / "sample2")


def test_custom_keys_still_write_inputs_and_targets_files(fork_dir, tmp_path):
    lines = (fork_dir / "sample2.jsonl").read_text(encoding="utf-8").split("\n")[:-1]
    renamed = [json.dumps({"prompt": r["inputs"], "completion": r["targets"]}) for r in map(json.loads, lines)]
    (tmp_path / "custom.jsonl").write_text("\n".join(renamed) + "\n", encoding="utf-8")
    assert _run("--input", tmp_path / "custom.jsonl", "--tokenizer", fork_dir / "tokenizer.json",
                "--output-prefix", tmp_path / "sample2", "--keys", "prompt", "completion") == 0
    _assert_same_files(tmp_path / "sample2", fork_dir / "sample2")


def _holdout(fork_dir, tmp_path, *flags, name="h"):
    prefix = tmp_path / name
    assert _run("--input", fork_dir / "sample.jsonl", "--tokenizer", fork_dir / "tokenizer.json",
                "--output-prefix", prefix, *flags) == 0
    return [IndexedDataset(f"{prefix}_targets_document"), IndexedDataset(f"{prefix}_valid_targets_document")]


def test_heldout_is_exact_seeded_and_disjoint(fork_dir, tmp_path):
    train, valid = _holdout(fork_dir, tmp_path, "--valid-count", 37, "--valid-seed", 7)
    assert len(valid) == 37 and len(train) == 363
    expected = np.zeros(400, dtype=bool)
    expected[np.random.RandomState(7).choice(400, 37, replace=False)] = True  # independent re-draw
    fork = IndexedDataset(fork_dir / "sample_targets_document")
    assert [fork[i].tolist() for i in np.flatnonzero(expected)] == [valid[j].tolist() for j in range(37)]
    assert [fork[i].tolist() for i in np.flatnonzero(~expected)] == [train[j].tolist() for j in range(363)]
    again = _holdout(fork_dir, tmp_path, "--valid-count", 37, "--valid-seed", 7, name="again")
    assert filecmp.cmp(f"{tmp_path}/h_valid_inputs_document.bin", f"{tmp_path}/again_valid_inputs_document.bin",
                       shallow=False)
    m = read_manifest(manifest_path(tmp_path / "h"))
    assert m["outputs"]["valid"]["documents"] == 37 and m["outputs"]["train"]["documents"] == 363
    assert len(again[1]) == 37


def _hash_heldout(path, fraction, seed=1234):
    """An independent re-statement of the --valid-fraction rule: keyed 64-bit BLAKE2b of each record's line."""
    lines = [line for line in path.read_bytes().split(b"\n") if line.strip()]
    key = str(seed).encode()
    return np.array([int.from_bytes(hashlib.blake2b(line, digest_size=8, key=key).digest(), "little")
                     < int(fraction * 2**64) for line in lines])


def test_valid_fraction_holds_out_records_by_seeded_line_hash(fork_dir, tmp_path):
    train, valid = _holdout(fork_dir, tmp_path, "--valid-fraction", 0.05)
    expected = _hash_heldout(fork_dir / "sample.jsonl", 0.05)
    assert 0 < expected.sum() < 400 and len(valid) == expected.sum() and len(train) == 400 - expected.sum()
    heldout = read_manifest(manifest_path(tmp_path / "h"))["heldout"]
    assert heldout == {"records": expected.sum(), "seed": 1234, "prefix": f"{tmp_path / 'h'}_valid"}
    fork = IndexedDataset(fork_dir / "sample_targets_document")
    assert [fork[i].tolist() for i in np.flatnonzero(expected)] == [valid[j].tolist() for j in range(len(valid))]
    assert [fork[i].tolist() for i in np.flatnonzero(~expected)] == [train[j].tolist() for j in range(len(train))]
    other = _holdout(fork_dir, tmp_path, "--valid-fraction", 0.05, "--valid-seed", 99, name="other")
    assert len(other[1]) == _hash_heldout(fork_dir / "sample.jsonl", 0.05, 99).sum()
    assert [other[1][j].tolist() for j in range(len(other[1]))] != [valid[j].tolist() for j in range(len(valid))]


def test_valid_fraction_with_skipped_records_holds_out_by_each_kept_line(fork_dir, tmp_path):
    # bad lines among good ones: the hash of each kept record's own line decides, whatever was skipped before it
    lines = (fork_dir / "sample.jsonl").read_bytes().split(b"\n")
    bad = {3: b"[1]", 150: b'{"inputs": "a"}', 151: b"", 399: b'{"inputs": "", "targets": "b"}'}
    data = tmp_path / "mixed.jsonl"
    data.write_bytes(b"\n".join(bad.get(i, line) for i, line in enumerate(lines)))
    assert _run("--input", data, "--tokenizer", fork_dir / "tokenizer.json", "--output-prefix", tmp_path / "m",
                "--valid-fraction", 0.1, "--skip-invalid", "--workers", 1) == 0
    kept = [i for i in range(400) if i not in bad]
    expected = _hash_heldout(fork_dir / "sample.jsonl", 0.1)[kept]
    fork = IndexedDataset(fork_dir / "sample_targets_document")
    train, valid = IndexedDataset(f"{tmp_path}/m_targets_document"), IndexedDataset(f"{tmp_path}/m_valid_targets_document")
    assert 0 < expected.sum() < len(kept) and len(valid) == expected.sum() and len(train) == len(kept) - expected.sum()
    assert [fork[kept[k]].tolist() for k in np.flatnonzero(expected)] == [valid[j].tolist() for j in range(len(valid))]
    assert [fork[kept[k]].tolist() for k in np.flatnonzero(~expected)] == [train[j].tolist() for j in range(len(train))]


def test_valid_fraction_that_holds_out_nothing_is_refused(fork_dir, tmp_path, capsys):
    assert _run("--input", fork_dir / "sample2.jsonl", "--tokenizer", fork_dir / "tokenizer.json",
                "--output-prefix", tmp_path / "none", "--valid-fraction", 1e-9) == 2
    assert "held out none of the 150 records" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_a_holdout_that_leaves_no_training_record_is_refused(fork_dir, tmp_path, capsys):
    for flags in (["--valid-count", 400], ["--valid-fraction", 0.999], ["--valid-count", -1],
                  ["--valid-fraction", 0.1, "--valid-count", 3]):
        assert _run("--input", fork_dir / "sample.jsonl", "--tokenizer", fork_dir / "tokenizer.json",
                    "--output-prefix", tmp_path / "all", *flags) == 2
    err = capsys.readouterr().err
    assert "holding out 400 of 400 records leaves none" in err and "not both" in err
    assert "data.valid_count: must be >= 0, got -1" in err  # the flag's value, refused before any work
    assert not list(tmp_path.iterdir())


def test_config_section_and_overrides(fork_dir, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(
        "data:\n"
        f"  inputs: [{fork_dir / 'sample.jsonl'}]\n"
        f"  tokenizer: {fork_dir / 'tokenizer.json'}\n"
        f"  output_prefix: {tmp_path / 'cfg'}\n"
        "  valid_fraction: 0.05\n"
    )
    # the override replaces the prefix; the flag replaces the config's way of sizing the hold-out
    assert _run("--config", config, f"data.output_prefix={tmp_path / 'over'}", "--valid-count", 10) == 0
    assert len(IndexedDataset(tmp_path / "over_valid_inputs_document")) == 10
    assert not (tmp_path / "cfg_inputs_document.idx").exists()
    assert _run("--config", config, "data.no_such_key=1") == 2
    # overrides after --input FILE are still overrides
    assert _run("--config", config, "--input", fork_dir / "sample2.jsonl", f"output_prefix={tmp_path / 'late'}") == 0
    expected = _hash_heldout(fork_dir / "sample2.jsonl", 0.05).sum()
    assert len(IndexedDataset(tmp_path / "late_valid_inputs_document")) == expected > 0


def test_progress_bar_on_request_on_a_terminal(fork_dir, tmp_path, capsys, monkeypatch):
    import sys

    from dataset.preprocess import preprocess
    from runconfig.data_section import DataConfig

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)

    preprocess(DataConfig(inputs=(str(fork_dir / "sample2.jsonl"),), tokenizer=str(fork_dir / "tokenizer.json"),
                          output_prefix=str(tmp_path / "p")), progress=True)
    assert "preprocess: 100%" in capsys.readouterr().err


def test_int32_dtype_for_a_vocab_of_65500_or_more(tmp_path):
    from tokenizers import models, pre_tokenizers

    vocab = {"<|endoftext|>": 0, **{f"w{i}": i + 1 for i in range(65_600)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<|endoftext|>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.save(str(tmp_path / "big.json"))
    (tmp_path / "d.jsonl").write_text('{"inputs": "w65599 w3", "targets": "w70000 w1"}\n')
    assert _run("--input", tmp_path / "d.jsonl", "--tokenizer", tmp_path / "big.json",
                "--output-prefix", tmp_path / "big") == 0
    idx = (tmp_path / "big_inputs_document.idx").read_bytes()
    assert idx[17] == 4  # dtype code int32
    assert np.fromfile(tmp_path / "big_inputs_document.bin", dtype="<i4").tolist() == [65600, 4]
    assert np.fromfile(tmp_path / "big_targets_document.bin", dtype="<i4").tolist() == [0, 2]


def test_shell_wrapper_runs_the_module(fork_dir, tmp_path):
    import os
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT

    env = {**os.environ, "PYTHON": sys.executable}
    subprocess.run(["bash", str(REPO_ROOT / "dataset" / "preprocess.sh"), "--input", str(fork_dir / "sample2.jsonl"),
                    "--tokenizer", str(fork_dir / "tokenizer.json"), "--output-prefix", str(tmp_path / "sample2")],
                   check=True, cwd=REPO_ROOT, env=env, capture_output=True)
    _assert_same_files(tmp_path / "sample2", fork_dir / "sample2")
    shutil.rmtree(tmp_path)


def test_two_prefixes_in_one_folder_keep_their_own_manifest(fork_dir, tmp_path):
    """The blend layout: a and b in one folder; each run's manifest describes its own prefix, a's survives b's."""
    from dataset.preprocess_manifest import find_manifest

    assert _run("--input", fork_dir / "sample.jsonl", "--tokenizer", fork_dir / "tokenizer.json",
                "--output-prefix", tmp_path / "a", "--valid-count", 10) == 0
    assert _run("--input", fork_dir / "sample2.jsonl", "--tokenizer", fork_dir / "tokenizer.json",
                "--output-prefix", tmp_path / "b") == 0
    a, b = read_manifest(manifest_path(tmp_path / "a")), read_manifest(manifest_path(tmp_path / "b"))
    assert Path(a["output_prefix"]).name == "a" and a["outputs"]["train"]["documents"] == 390
    assert Path(b["output_prefix"]).name == "b" and b["inputs"][0]["path"].endswith("sample2.jsonl")
    assert not (tmp_path / "manifest.json").exists()
    # a reader finds the manifest of every prefix a run wrote, the held-out one included, and no other
    assert find_manifest(tmp_path / "a_valid") == find_manifest(tmp_path / "a") == manifest_path(tmp_path / "a")
    assert find_manifest(tmp_path / "b") == manifest_path(tmp_path / "b")
    assert find_manifest(tmp_path / "b_valid") is None and find_manifest(tmp_path / "c") is None


def test_finished_datasets_are_recorded_complete_for_the_interrupt_message(fork_dir, tmp_path):
    prefix = str(tmp_path / "out" / "sample")
    flags = ["--input", str(fork_dir / "sample.jsonl"), "--tokenizer", str(fork_dir / "tokenizer.json"),
             "--output-prefix", prefix, "--workers", "1"]
    assert main(flags) == 0
    assert claimed_outputs()[prefix_claim(prefix)] == "complete"  # Ctrl-C now says "... is complete"
