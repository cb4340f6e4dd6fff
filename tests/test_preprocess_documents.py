"""``python -m dataset.preprocess --keys content --append-eod`` writes the fork's raw-code dataset byte for byte.

The golden ``code_content_document.{bin,idx}`` comes from the fork's ``tools/preprocess_data.py --json-keys
content --append-eod`` (tests/fixtures/fork_fim/README.md).
"""
import filecmp
import json
from pathlib import Path

import pytest

from dataset.formats.indexed_dataset import IndexedDataset
from dataset.preprocessing.preprocess import main
from dataset.formats.preprocess_manifest import manifest_path, read_manifest

FIM_DIR = Path(__file__).parent / "fixtures" / "fork_fim"


def _run(*args) -> int:
    return main([str(a) for a in args])


@pytest.mark.parametrize("workers", [1, 2])
def test_single_key_is_byte_identical_to_fork(tmp_path, workers):
    prefix = tmp_path / "code"
    assert _run("--input", FIM_DIR / "code.jsonl", "--tokenizer", FIM_DIR / "tokenizer.json",
                "--output-prefix", prefix, "--keys", "content", "--append-eod", "--workers", workers) == 0
    for ext in ("bin", "idx"):
        ours, fork = tmp_path / f"code_content_document.{ext}", FIM_DIR / f"code_content_document.{ext}"
        assert filecmp.cmp(ours, fork, shallow=False), f"{ours} differs from the fork's"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "code.preprocess.manifest.json", "code_content_document.bin", "code_content_document.idx"]
    m = read_manifest(manifest_path(prefix))
    assert m["keys"] == {"content": "content"} and m["append_eod"] is True
    assert m["outputs"]["train"]["documents"] == 300
    assert m["outputs"]["train"]["tokens"] == {"content": 120841}  # the fixture README's count
    docs = IndexedDataset(tmp_path / "code_content_document")
    assert all(docs[i][-1] == 0 for i in range(len(docs)))  # every document ends in EOD


def test_single_key_empty_field_is_reported_and_skippable(tmp_path, capsys):
    src = tmp_path / "raw.jsonl"
    src.write_text(json.dumps({"content": "x = 1\n"}) + "\n" + json.dumps({"content": ""}) + "\n"
                   + json.dumps({"text": "y"}) + "\n" + json.dumps({"content": "z = 2\n"}) + "\n")
    prefix = tmp_path / "out" / "raw"
    args = ["--input", src, "--tokenizer", FIM_DIR / "tokenizer.json", "--output-prefix", prefix,
            "--keys", "content", "--append-eod", "--workers", 1]
    assert _run(*args) == 2
    err = capsys.readouterr().err
    assert f"{src}:2: field 'content'" in err and "empty_field" in err
    assert not (tmp_path / "out").exists()  # nothing half-written
    assert _run(*args, "--skip-invalid") == 0
    m = read_manifest(manifest_path(prefix))
    assert m["skipped"] == {"empty_field": 1, "missing_key": 1} and m["records_written"] == 2
    docs = IndexedDataset(tmp_path / "out" / "raw_content_document")
    assert [int(d[-1]) for d in docs] == [0, 0] and len(docs) == 2


def test_single_key_heldout_goes_to_valid_prefix(tmp_path):
    prefix = tmp_path / "code"
    assert _run("--input", FIM_DIR / "code.jsonl", "--tokenizer", FIM_DIR / "tokenizer.json",
                "--output-prefix", prefix, "--keys", "content", "--append-eod", "--valid-count", 10,
                "--workers", 1, "data.max_line_bytes=1000000") == 0
    train = IndexedDataset(tmp_path / "code_content_document")
    valid = IndexedDataset(tmp_path / "code_valid_content_document")
    fork = IndexedDataset(FIM_DIR / "code_content_document")
    assert len(train) == 290 and len(valid) == 10
    ours = sorted(tuple(d) for d in [*(train[i] for i in range(290)), *(valid[i] for i in range(10))])
    assert ours == sorted(tuple(fork[i]) for i in range(300))  # a partition of the same documents


def test_three_keys_is_a_config_error(tmp_path, capsys):
    assert _run("--input", FIM_DIR / "code.jsonl", "--tokenizer", FIM_DIR / "tokenizer.json",
                "--output-prefix", tmp_path / "x", "--keys", "a", "b", "c") == 2
    assert "keys must name two fields" in capsys.readouterr().err
