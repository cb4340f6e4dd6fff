"""A run killed with SIGKILL after a checkpoint and resumed ends bitwise equal to an uninterrupted run (CPU).

Real subprocesses (``python -m training.finetune``); the tiny model keeps dropout on, so the RNG state
must be restored exactly for the weights to match.
"""
import hashlib
import json
import signal
import subprocess
import time

import torch

from conversion.megatron_checkpoint import read_megatron_checkpoint
from tests.local_engine_fixtures import PYTHON, run_overrides, subprocess_env, tiny_release

ITERS = 14


def _cmd(overrides):
    return [PYTHON, "-m", "training.finetune", "--engine", "local", *overrides]


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_sigkill_then_resume_is_bitwise_identical(tmp_path):
    base = tiny_release(tmp_path, dropout=0.1)
    base_file = base / "release" / "mp_rank_00" / "model_optim_rng.pt"
    base_hash = _digest(base_file)
    extra = {"train_iters": ITERS, "save_interval": 2, "eval_interval": 7, "tensorboard": False}
    env = subprocess_env()

    straight = subprocess.run(_cmd(run_overrides(tmp_path, base, tmp_path / "straight", **extra)),
                              env=env, capture_output=True, text=True, timeout=120)
    assert straight.returncode == 0, straight.stderr[-2000:]

    killed_dir = tmp_path / "killed"
    tracker = killed_dir / "latest_checkpointed_iteration.txt"
    proc = subprocess.Popen(_cmd(run_overrides(tmp_path, base, killed_dir, **extra)), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        if tracker.exists() and tracker.read_text().strip().isdigit():
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.002)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    killed_at = int(tracker.read_text())
    assert 2 <= killed_at < ITERS

    resumed = subprocess.run(_cmd(run_overrides(tmp_path, base, killed_dir, **extra)),
                             env=env, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"data position iteration {killed_at} / {killed_at * 4} samples" in resumed.stdout
    assert "restored: optimizer state" in resumed.stdout

    a = read_megatron_checkpoint(tmp_path / "straight")
    b = read_megatron_checkpoint(killed_dir)
    assert a.iteration == b.iteration == ITERS
    assert a.hf_state_dict.keys() == b.hf_state_dict.keys()
    for name in a.hf_state_dict:
        assert torch.equal(a.hf_state_dict[name], b.hf_state_dict[name]), name
    state_a, state_b = a.optimizer["state"], b.optimizer["state"]  # the fork's FP32Optimizer entry
    for index in state_a:
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(state_a[index][key], state_b[index][key]), (index, key)
    # the weights really moved, and the starting release checkpoint was left alone
    start = read_megatron_checkpoint(base)
    assert not torch.equal(start.hf_state_dict["transformer.h.0.attn.c_attn.weight"],
                           a.hf_state_dict["transformer.h.0.attn.c_attn.weight"])
    assert _digest(base_file) == base_hash
    # the metrics file tells one story: every iteration exactly once, losses equal to the straight run
    def train_losses(folder):
        lines = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
        return [(r["iteration"], r["loss"]) for r in lines if r["kind"] == "train"]
    assert train_losses(killed_dir) == train_losses(tmp_path / "straight")
    assert [i for i, _ in train_losses(killed_dir)] == list(range(1, ITERS + 1))
