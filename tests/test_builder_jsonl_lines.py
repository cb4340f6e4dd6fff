"""The builders' jsonl lines are the lines parquet rows stand for, so ``--valid-fraction`` (a hash of each line's
bytes) holds out the same documents from a builder's jsonl as from the same documents in parquet."""
import json

import pytest

pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow is not installed (pip install codeft[parquet])")
import pyarrow as pa  # noqa: E402

from dataset.builders.code_to_jsonl import main as code_to_jsonl  # noqa: E402
from dataset.builders.octopack_format import commit_record, docstring_record  # noqa: E402
from dataset.formats.parquet_records import record_line  # noqa: E402
from dataset.preprocessing.preprocess import main as preprocess  # noqa: E402

# Text that JSON writers spell differently: non-ASCII, quotes, backslashes, tabs, control characters, U+2028.
ODD = ["é ü 中文", '"quoted"', "back\\slash", "\ttab", "ctl\x01\x1f", "line\u2028sep", "</script>", "emoji 😀"]


def _source(root):
    root.mkdir()
    for i in range(60):
        text = f"def f{i}():\n    return '''{ODD[i % len(ODD)]}''' * {i}\n"
        (root / f"m{i:02d}.py").write_text(text, encoding="utf-8")
    return root


def _preprocess(fork_dir, source, prefix):
    assert preprocess(["--input", str(source), "--tokenizer", str(fork_dir / "tokenizer.json"), "--output-prefix",
                       str(prefix), "--workers", "1", "--keys", "content", "--append-eod",
                       "--valid-fraction", "0.2", "--valid-seed", "5"]) == 0
    return {f"{p.name}.{ext}": p.with_suffix(f".{ext}").read_bytes()
            for name in ("code_content_document", "code_valid_content_document")
            for p in [prefix.parent / name] for ext in ("bin", "idx")}


def test_code_to_jsonl_and_parquet_of_the_same_files_split_the_same(fork_dir, tmp_path):
    jsonl = tmp_path / "code.jsonl"
    assert code_to_jsonl(["--source", str(_source(tmp_path / "src")), "--output", str(jsonl)]) == 0
    lines = jsonl.read_bytes().split(b"\n")[:-1]
    documents = [json.loads(line)["content"] for line in lines]
    assert len(documents) == 60 and any("\u2028" in d for d in documents)
    parquet = tmp_path / "code.parquet"
    pq.write_table(pa.table({"content": documents, "max_stars_count": list(range(60))}), parquet, row_group_size=16)
    from_jsonl = _preprocess(fork_dir, jsonl, tmp_path / "j" / "code")
    assert from_jsonl == _preprocess(fork_dir, parquet, tmp_path / "p" / "code")
    assert from_jsonl["code_valid_content_document.bin"] and from_jsonl["code_content_document.bin"]
    # json.dumps's spacing would have held out other files (the hash is of the bytes): the check above can fail
    dumped = tmp_path / "dumped.jsonl"
    dumped.write_text("".join(json.dumps({"content": d}, ensure_ascii=False) + "\n" for d in documents), "utf-8")
    assert _preprocess(fork_dir, dumped, tmp_path / "d" / "code") != from_jsonl


def test_pair_builders_write_the_parquet_row_line():
    for record in (commit_record("a.py", "old é\t", "fix \"it\"", "new\x01"), docstring_record(None, "p\u2028", "b")):
        values = {"inputs": record.inputs, "targets": record.targets}
        assert record.to_json_line().encode("utf-8") == record_line(values) + b"\n"
