"""Parquet inputs (the StarCoder data / The Stack layout) for dataset.preprocess: the same bytes out as the same
records given as jsonl, the same skips and hold-outs, shards cut at row-group boundaries, language folders."""
import hashlib
import json

import pytest

pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow is not installed (pip install codeft[parquet])")
import pyarrow as pa  # noqa: E402

from dataset.preprocessing import merge_shards, preprocess  # noqa: E402
from dataset.formats.parquet_records import record_line, row_group_starts  # noqa: E402
from dataset.formats.preprocess_manifest import manifest_path, read_manifest  # noqa: E402
from dataset.preprocessing.shard_plan import ShardSpec, plan_shard  # noqa: E402


def _fixture_records(fork_dir, name="sample.jsonl"):
    return [json.loads(line) for line in (fork_dir / name).read_text(encoding="utf-8").split("\n") if line]


def _write(records, parquet, jsonl, columns, rows_per_group):
    """The same records as parquet (several row groups) and as jsonl lines written by ``record_line``."""
    table = pa.table({c: [r.get(c) for r in records] for c in columns})
    pq.write_table(table, parquet, row_group_size=rows_per_group)
    jsonl.write_bytes(b"".join(record_line({c: r.get(c) for c in columns}) + b"\n" for r in records))


def _run(fork_dir, inputs, prefix, *extra):
    return preprocess.main(["--input", *map(str, inputs), "--tokenizer", str(fork_dir / "tokenizer.json"),
                            "--output-prefix", str(prefix), "--workers", "1", *map(str, extra)])


def _outputs(prefix, roles):
    return {f"{p.name}_{role}_document.{ext}": (p.parent / f"{p.name}_{role}_document.{ext}").read_bytes()
            for p in (prefix, prefix.with_name(prefix.name + "_valid")) for role in roles for ext in ("bin", "idx")}


def _bad_records(records):
    """Records every input format must skip the same way: a null field, an empty one (a parquet column has one
    type, so a number among strings cannot occur; a number column is checked on its own)."""
    bad = [dict(records[0], targets=None), dict(records[1], inputs="")]
    return records[:40] + bad + records[40:80]


@pytest.mark.parametrize("extra", [("--valid-fraction", 0.2, "--valid-seed", 3), ("--valid-count", 9)],
                         ids=["fraction", "count"])
def test_parquet_pairs_are_byte_identical_to_the_same_jsonl(fork_dir, tmp_path, extra):
    records = _bad_records(_fixture_records(fork_dir))
    parquet, jsonl = tmp_path / "pairs.parquet", tmp_path / "pairs.jsonl"
    _write(records, parquet, jsonl, ("inputs", "targets"), rows_per_group=16)
    assert len(row_group_starts(parquet)) == 6  # 123 rows in groups of 16
    for source, prefix in ((parquet, tmp_path / "p" / "pairs"), (jsonl, tmp_path / "j" / "pairs")):
        assert _run(fork_dir, [source], prefix, "--skip-invalid", *extra) == 0
    assert _outputs(tmp_path / "p" / "pairs", ("inputs", "targets")) == \
        _outputs(tmp_path / "j" / "pairs", ("inputs", "targets"))
    a, b = (read_manifest(manifest_path(tmp_path / d / "pairs")) for d in ("p", "j"))
    assert a["skipped"] == b["skipped"] == {"empty_field": 1, "null_key": 1}
    for key in ("records_in", "records_written", "heldout", "outputs"):
        if key == "outputs":
            assert [v["documents"] for v in a[key].values()] == [v["documents"] for v in b[key].values()]
        else:
            assert a[key] == b[key] or key == "heldout" and a[key]["records"] == b[key]["records"], key
    assert a["records_in"] == len(records) and a["heldout"]["records"] > 0


def test_raw_code_from_several_parquet_files_with_eod(fork_dir, tmp_path):
    records = [{"content": r["inputs"] + r["targets"]} for r in _fixture_records(fork_dir)[:60]]
    files = []
    for i, part in enumerate((records[:25], records[25:])):
        files.append((tmp_path / f"code-{i}.parquet", tmp_path / f"code-{i}.jsonl"))
        _write(part, *files[-1], ("content",), rows_per_group=7)
    for which, prefix in ((0, tmp_path / "p" / "code"), (1, tmp_path / "j" / "code")):
        assert _run(fork_dir, [f[which] for f in files], prefix, "--keys", "content", "--append-eod") == 0
    for ext in ("bin", "idx"):
        name = f"code_content_document.{ext}"
        assert (tmp_path / "p" / name).read_bytes() == (tmp_path / "j" / name).read_bytes()


def test_strict_mode_names_the_row(fork_dir, tmp_path, capsys):
    records = _bad_records(_fixture_records(fork_dir))
    parquet = tmp_path / "pairs.parquet"
    _write(records, parquet, tmp_path / "pairs.jsonl", ("inputs", "targets"), rows_per_group=16)
    assert _run(fork_dir, [parquet], tmp_path / "out" / "pairs") == 2
    err = capsys.readouterr().err
    assert f"{parquet}:41: field 'targets': the field is null [null_key]" in err  # row 41, counted from 1
    missing = tmp_path / "no_targets.parquet"
    _write(records[:5], missing, tmp_path / "no_targets.jsonl", ("inputs",), rows_per_group=2)
    assert _run(fork_dir, [missing], tmp_path / "out2" / "pairs") == 2
    assert f"{missing}:1: field 'targets': no field 'targets' (or 'outputs')" in capsys.readouterr().err
    numbers = tmp_path / "numbers.parquet"
    pq.write_table(pa.table({"inputs": ["a", "b"], "targets": [1, 2]}), numbers)
    assert _run(fork_dir, [numbers], tmp_path / "out3" / "pairs", "--skip-invalid") == 2  # nothing left to write
    assert "skipped: {'non_string_key': 2}" in capsys.readouterr().err


def test_shards_cut_parquet_at_row_groups_and_merge_to_the_same_bytes(fork_dir, tmp_path):
    records = _fixture_records(fork_dir) + _fixture_records(fork_dir, "sample2.jsonl")
    parquet = tmp_path / "pairs.parquet"
    _write(records, parquet, tmp_path / "pairs.jsonl", ("inputs", "targets"), rows_per_group=30)
    starts = row_group_starts(parquet)
    size = parquet.stat().st_size
    pieces = [plan_shard([str(parquet)], ShardSpec(i, 4)) for i in range(4)]
    cuts = [p[0].start for p in pieces if p and p[0].start > 0]
    assert cuts and set(cuts) <= set(starts)  # every cut falls where a row group starts
    assert sum(p[0].end - p[0].start for p in pieces if p) == size
    extra = ("--valid-fraction", 0.1)
    assert _run(fork_dir, [parquet], tmp_path / "one" / "pairs", *extra) == 0
    prefix = tmp_path / "sharded" / "pairs"
    for index in range(4):
        assert _run(fork_dir, [parquet], prefix, *extra, "--num-shards", 4, "--shard-index", index) == 0
    assert merge_shards.main(["--output-prefix", str(prefix), "--num-shards", "4"]) == 0
    assert _outputs(prefix, ("inputs", "targets")) == _outputs(tmp_path / "one" / "pairs", ("inputs", "targets"))
    # the recorded digests are of the file's bytes (whole, and each shard's piece): what launch compares them with
    data = parquet.read_bytes()
    assert read_manifest(manifest_path(tmp_path / "one" / "pairs"))["inputs"][0]["sha256"] == \
        hashlib.sha256(data).hexdigest()
    pieces = read_manifest(manifest_path(prefix))["pieces"]
    assert len(pieces) == len([p for p in pieces if p["path"] == str(parquet)]) > 1
    assert [p["sha256"] for p in pieces] == [hashlib.sha256(data[p["start"]:p["end"]]).hexdigest() for p in pieces]


def test_languages_are_read_from_a_stack_like_folder(fork_dir, tmp_path, capsys):
    records = _fixture_records(fork_dir)
    root = tmp_path / "starcoderdata"
    for language, part in (("go", records[:30]), ("rust", records[30:70]), ("python", records[70:90])):
        (root / language).mkdir(parents=True)
        for i in range(2):
            half = part[i * len(part) // 2:(i + 1) * len(part) // 2]
            _write([{"content": r["targets"]} for r in half], root / language / f"train-{i:05d}-of-00002.parquet",
                   tmp_path / f"{language}{i}.jsonl", ("content",), rows_per_group=8)
    assert _run(fork_dir, [root], tmp_path / "sel" / "code", "--keys", "content", "--languages", "go,rust") == 0
    chosen = [root / lang / f"train-{i:05d}-of-00002.parquet" for lang in ("go", "rust") for i in range(2)]
    assert _run(fork_dir, chosen, tmp_path / "files" / "code", "--keys", "content") == 0
    manifest = read_manifest(manifest_path(tmp_path / "sel" / "code"))
    assert [i["path"] for i in manifest["inputs"]] == [str(p) for p in chosen] and manifest["records_in"] == 70
    for ext in ("bin", "idx"):
        name = f"code_content_document.{ext}"
        assert (tmp_path / "sel" / name).read_bytes() == (tmp_path / "files" / name).read_bytes()
    assert _run(fork_dir, [root], tmp_path / "bad" / "code", "--keys", "content", "--languages", "go,cobol") == 2
    assert f"{root / 'cobol'}: no such language folder; {root} has: go, python, rust" in capsys.readouterr().err
    assert _run(fork_dir, [root], tmp_path / "bad" / "code", "--keys", "content") == 2
    assert "a folder; name the languages to read from it (--languages go,rust)" in capsys.readouterr().err
