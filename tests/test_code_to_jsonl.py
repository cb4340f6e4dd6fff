"""``python -m dataset.code_to_jsonl``: raw files -> {"content"} jsonl, filtered, counted, deterministic."""
import json
import os
import subprocess
from pathlib import Path

import numpy as np

from dataset.code_to_jsonl import main
from dataset.indexed_dataset import IndexedDataset
from dataset.preprocess import main as preprocess_main
from training.gpt_samples import main as samples_main

FIM_DIR = Path(__file__).parent / "fixtures" / "fork_fim"


def _tree(root: Path) -> Path:
    root.mkdir()
    (root / "a.py").write_text("def a():\n    return 'é'\n", encoding="utf-8")
    (root / "b.py").write_text("def a():\n    return 'é'\n", encoding="utf-8")  # duplicate of a.py
    (root / "notes.txt").write_text("not code\n")
    (root / "big.py").write_text("x = 1\n" * 100)
    (root / "blob.py").write_bytes(b"abc\x00def\n")
    (root / "latin.py").write_bytes("s = 'caf\xe9'\n".encode("latin-1"))
    (root / "empty.py").write_text("  \n")
    (root / "eot.py").write_text("s = '<|endoftext|>'\n")
    (root / "sub").mkdir()
    (root / "sub" / "d.py").write_text("import os\n")
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "x.py").write_text("y = 2\n")
    (root / "link.py").symlink_to(root / "sub" / "d.py")
    return root


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_filters_are_counted_and_the_output_is_deterministic(tmp_path, capsys):
    src = _tree(tmp_path / "src")
    args = ["--source", str(src), "--max-file-bytes", "300", "--no-shuffle"]
    assert main([*args, "--output", str(tmp_path / "a.jsonl")]) == 0
    assert _lines(tmp_path / "a.jsonl") == [{"content": "def a():\n    return 'é'\n"}, {"content": "import os\n"}]
    manifest = json.loads((tmp_path / "a.manifest.json").read_text())
    assert manifest["skipped"] == {"binary_file": 1, "duplicate": 1, "empty_file": 1, "excluded_dir": 1,
                                   "not_regular_file": 1, "other_extension": 1, "oversized_file": 1,
                                   "special_token_in_text": 1, "undecodable_utf8": 1}
    assert manifest["records"] == 2 and manifest["builder"] == "dataset.code_to_jsonl"
    assert "skipped: binary_file=1" in capsys.readouterr().out
    assert main([*args, "--output", str(tmp_path / "b.jsonl")]) == 0
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert main(["--source", str(src), "--output", str(tmp_path / "c.jsonl"), "--filename-prefix",
                 "--extensions", ".py", ".txt", "--seed", "7"]) == 0
    contents = sorted(r["content"] for r in _lines(tmp_path / "c.jsonl"))
    assert contents[0] == "<filename>a.py\ndef a():\n    return 'é'\n"
    assert "<filename>sub/d.py\nimport os\n" in contents and "<filename>notes.txt\nnot code\n" in contents


def test_nothing_selected_is_an_error_and_writes_nothing(tmp_path, capsys):
    src = _tree(tmp_path / "src")
    assert main(["--source", str(src), "--output", str(tmp_path / "o.jsonl"), "--extensions", ".rs"]) == 2
    assert "no file passed the filters" in capsys.readouterr().err and not (tmp_path / "o.jsonl").exists()
    assert main(["--source", str(tmp_path / "missing"), "--output", str(tmp_path / "o.jsonl")]) == 2


def test_a_fifo_and_a_name_that_is_not_utf8_are_skipped_and_counted(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.py").write_text("x = 1\n")
    os.mkfifo(src / "pipe.py")  # reading it would block forever; it is no source file
    (src / os.fsdecode(b"b\xff.py")).write_text("y = 2\n")  # a Latin-1 name on a UTF-8 system
    out = tmp_path / "o.jsonl"
    assert main(["--source", str(src), "--output", str(out), "--filename-prefix", "--no-shuffle"]) == 0
    assert _lines(out) == [{"content": "<filename>a.py\nx = 1\n"}]
    manifest = json.loads((tmp_path / "o.manifest.json").read_text())
    assert manifest["skipped"] == {"not_regular_file": 1, "undecodable_file_name": 1}
    assert "undecodable_file_name=1" in capsys.readouterr().out
    # without --filename-prefix the name is never written, so the file is read like any other
    assert main(["--source", str(src), "--output", str(tmp_path / "p.jsonl"), "--no-shuffle"]) == 0
    assert _lines(tmp_path / "p.jsonl") == [{"content": "x = 1\n"}, {"content": "y = 2\n"}]


def test_git_revision_reads_tracked_files_only(tmp_path):
    repo = _tree(tmp_path / "repo")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    (repo / "sub" / "d.py").write_text("changed after the commit\n")
    (repo / "new.py").write_text("untracked = 1\n")
    assert main(["--source", str(repo), "--revision", "HEAD", "--output", str(tmp_path / "g.jsonl"),
                 "--max-file-bytes", "300", "--no-shuffle"]) == 0
    assert _lines(tmp_path / "g.jsonl") == [{"content": "def a():\n    return 'é'\n"}, {"content": "import os\n"}]
    manifest = json.loads((tmp_path / "g.manifest.json").read_text())
    assert manifest["skipped"]["not_regular_file"] == 1 and manifest["skipped"]["excluded_dir"] == 1
    assert len(manifest["head"]) == 40


def test_code_to_fim_samples_end_to_end(tmp_path):
    """The builder's <filename> records go through preprocess (one key) and FIM with --fim-split-sample."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(30):
        (src / f"m{i:02d}.py").write_text(f"def f{i}(x):\n    return x * {i}\n" * (i % 4 + 1))
    assert main(["--source", str(src), "--output", str(tmp_path / "code.jsonl"), "--filename-prefix"]) == 0
    assert preprocess_main(["--input", str(tmp_path / "code.jsonl"), "--tokenizer", str(FIM_DIR / "tokenizer.json"),
                            "--output-prefix", str(tmp_path / "code"), "--keys", "content", "--append-eod",
                            "--workers", "1"]) == 0
    docs = IndexedDataset(tmp_path / "code_content_document")
    assert len(docs) == 30 and all(d[0] == 5 and d[-1] == 0 for d in docs)  # <filename> ... <|endoftext|>
    assert samples_main(["--data-prefix", str(tmp_path / "code_content_document"), "--tokenizer",
                         str(FIM_DIR / "tokenizer.json"), "--seq-length", "32", "--num-samples", "20",
                         "--fim-rate", "1", "--fim-split-sample", "<filename>", "--fragment-fim-rate", "1",
                         "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "s.npy")]) == 0
    rows = np.load(tmp_path / "s.npy")
    assert rows.shape == (20, 33) and (rows == 1).any(axis=1).all()  # every row was FIM-transformed
