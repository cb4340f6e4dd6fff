"""guardrails.atomic_folder: the output folder is replaced only when complete; failures leave the old one."""
from __future__ import annotations

import os

import pytest

from guardrails.atomic_folder import atomic_output_dir


def test_success_replaces_the_old_folder_and_leaves_no_temporaries(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    with atomic_output_dir(out) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(f".out.codeft.tmp-{os.getpid()}-") and list(tmp.iterdir()) == []
        (tmp / "new.txt").write_text("new")
        assert (out / "stale.txt").read_text() == "old"  # untouched while the new one is being written
    assert [p.name for p in out.iterdir()] == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_failure_keeps_the_old_folder_and_removes_the_temporary(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "kept.txt").write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_output_dir(out) as tmp:
            (tmp / "half.txt").write_text("half")
            raise RuntimeError("boom")
    assert [p.name for p in out.iterdir()] == ["kept.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_missing_parents_are_created(tmp_path):
    with atomic_output_dir(tmp_path / "a" / "b") as tmp:
        (tmp / "x").write_text("1")
    assert (tmp_path / "a" / "b" / "x").read_text() == "1"
