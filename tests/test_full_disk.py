"""A full disk is one line naming the path and the fix, exit 2, and leaves nothing: not even an empty folder.

Issue 7 item 9: torch's ``RuntimeError: unexpected pos`` traceback in ``hf_to_megatron`` (which left an empty
output folder) and in the engine's checkpoint save. Driven for real on a small full tmpfs (root only).
"""
from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conversion.checkpoint_format import save_checkpoint_file
from guardrails.command_errors import user_error_line
from tests.small_mounts import small_tmpfs
from tests.tiny_hf_checkpoints import tiny_model


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.name != ".filler"}


def test_hf_to_megatron_on_a_full_disk(tmp_path):
    hf = tmp_path / "hf"
    tiny_model(seed=1).save_pretrained(hf)
    with small_tmpfs(tmp_path / "disk", "full", keep={"notes.txt": b"mine"}) as disk:
        run = subprocess.run([sys.executable, "-m", "conversion.hf_to_megatron", "--hf", str(hf),
                              "--out", str(disk / "ckpt")], capture_output=True, text=True, timeout=120)
        assert run.returncode == 2, run.stderr
        assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr, run.stderr
        assert "no space left" in run.stderr and str(disk / "ckpt") in run.stderr, run.stderr
        assert _files(disk) == {"notes.txt": b"mine"}  # no empty ckpt/, no temporary


def test_the_checkpoint_save_on_a_full_disk_names_the_file(tmp_path):
    # the engine saves every checkpoint file through save_checkpoint_file (training.local.checkpointing)
    with small_tmpfs(tmp_path / "disk", "full") as disk:
        target = disk / "save" / "iter_0000010" / "mp_rank_00" / "model_optim_rng.pt"
        with pytest.raises(OSError) as info:
            save_checkpoint_file(target, {"model": {"w": torch.zeros(100_000)}})
        assert info.value.errno == errno.ENOSPC and info.value.filename == str(target)
        line = user_error_line("finetune", info.value)
        assert line is not None and str(target) in line and "no space left" in line
        assert not (disk / "save").exists()
