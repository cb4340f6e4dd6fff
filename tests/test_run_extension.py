"""The local engine extends a run as the fork does: a longer run keeps its decay window, and dropout is the config's.

``training.train_iters`` raised after a run finished resumes it; with ``training.lr_decay_samples: 0`` the
learning rate keeps decaying over the window of the checkpoint (the extra iterations train at ``min_lr``), the
same decision ``training.launch`` hands the fork (``tests/test_cluster_resume.py``).
"""
import json

import pytest
import torch

from conversion.megatron_checkpoint import read_megatron_checkpoint
from runconfig import load_section
from runconfig.training_section import TrainingConfig
from tests.local_engine_fixtures import run_overrides, tiny_release
from training.engine import train
from training.lr_schedule import SampleLRSchedule
from training.model_dropout import apply_run_dropout
from training.model_init import load_start_model


def _cfg(tmp_path, base, save, **extra):
    return load_section(None, "training", TrainingConfig, run_overrides(tmp_path, base, save, **extra))


def _lrs(save):
    records = [json.loads(line) for line in (save / "metrics.jsonl").read_text().splitlines()]
    return {r["iteration"]: r["lr"] for r in records if r["kind"] == "train"}


def test_an_extended_run_keeps_its_decay_window(tmp_path):
    base, save = tiny_release(tmp_path, dropout=0.0), tmp_path / "run"
    first = _cfg(tmp_path, base, save, train_iters=2, save_interval=2, eval_interval=100, lr_warmup_samples=0)
    train(first, say=lambda _m: None)
    messages = []
    longer = _cfg(tmp_path, base, save, train_iters=4, save_interval=2, eval_interval=100, lr_warmup_samples=0)
    train(longer, say=messages.append)
    window = SampleLRSchedule(1e-3, 1e-4, 0, 8)  # the first run's: 2 iterations x 4 samples
    assert _lrs(save) == pytest.approx({i: window.lr_at((i - 1) * 4) for i in (1, 2, 3, 4)})
    assert _lrs(save)[3] == _lrs(save)[4] == pytest.approx(1e-4)  # past the window: min_lr
    assert any("keeps its checkpoint's decay window of 8 samples (to iteration 2): iterations 3..4 train at min_lr"
               in m for m in messages)
    assert read_megatron_checkpoint(save).args.lr_decay_samples == 8  # recorded as used
    # asked for: training.lr_decay_samples decays over the whole extended run instead
    whole = _cfg(tmp_path, base, save, train_iters=6, save_interval=2, eval_interval=100, lr_warmup_samples=0,
                 lr_decay_samples=24)
    train(whole, say=lambda _m: None)
    assert _lrs(save)[5] == pytest.approx(SampleLRSchedule(1e-3, 1e-4, 0, 24).lr_at(16))


def test_dropout_comes_from_the_config_else_from_the_start_checkpoint(tmp_path):
    base = tiny_release(tmp_path, dropout=0.1)
    model, _ = load_start_model(base)
    cfg = _cfg(tmp_path, base, tmp_path / "run")
    assert apply_run_dropout(model, cfg) == (0.1, 0.1)  # unset: what the checkpoint records
    model, _ = load_start_model(base)
    cfg = _cfg(tmp_path, base, tmp_path / "run", hidden_dropout=0.0, attention_dropout=0.25)
    assert apply_run_dropout(model, cfg) == (0.0, 0.25)
    assert {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)} == {0.0}
    assert {m.attn_dropout for m in model.modules() if hasattr(m, "attn_dropout")} == {0.25}
    train(_cfg(tmp_path, base, tmp_path / "run", hidden_dropout=0.0, attention_dropout=0.25, train_iters=1,
               eval_interval=100, lr_warmup_samples=0), say=lambda _m: None)
    args = read_megatron_checkpoint(tmp_path / "run").args  # recorded: a resume (or the fork) trains with them
    assert (args.hidden_dropout, args.attention_dropout) == (0.0, 0.25)
