"""The fork's sample-counted schedule: linear warmup from 0, cosine (or linear) decay to min_lr, then flat."""
import math

import pytest

from runconfig.training_section import TrainingConfig
from training.lr_schedule import SampleLRSchedule


def test_cosine_values_by_hand():
    s = SampleLRSchedule(max_lr=1e-3, min_lr=1e-4, warmup_samples=40, decay_samples=480)
    assert s.lr_at(0) == 0.0  # the fork's first update, with warmup, uses lr 0
    assert s.lr_at(20) == pytest.approx(5e-4)
    assert s.lr_at(40) == pytest.approx(1e-3)
    assert s.lr_at(260) == pytest.approx(5.5e-4)  # half-way through the decay window: the mean
    assert s.lr_at(150) == pytest.approx(1e-4 + 0.9e-3 * 0.5 * (1 + math.cos(math.pi * 0.25)))
    assert s.lr_at(480) == pytest.approx(1e-4)
    assert s.lr_at(10_000) == 1e-4


def test_linear_and_constant():
    lin = SampleLRSchedule(2.0, 0.0, 0, 100, "linear")
    assert [lin.lr_at(x) for x in (0, 25, 100, 101)] == pytest.approx([2.0, 1.5, 0.0, 0.0])
    const = SampleLRSchedule(3.0, 0.0, 10, 0, "constant")
    assert [const.lr_at(x) for x in (5, 10, 1000)] == pytest.approx([1.5, 3.0, 3.0])


def test_decay_defaults_to_the_whole_run_and_bad_windows_are_rejected():
    cfg = TrainingConfig(lr=1.0, min_lr=0.0, lr_warmup_samples=0, lr_decay_samples=0,
                         lr_decay_style="cosine", train_iters=10, global_batch_size=8, micro_batch_size=4,
                         weight_decay=0.1)
    assert SampleLRSchedule.from_config(cfg).decay_samples == 80
    with pytest.raises(ValueError, match="lr_decay_samples"):
        SampleLRSchedule(1.0, 0.0, 100, 50)


def test_state_dict_is_the_forks_scheduler_entry():
    state = SampleLRSchedule(1e-3, 0.0, 8, 64, weight_decay=0.1, wd_incr_steps=80).state_dict(24)
    assert state == {"max_lr": 1e-3, "lr_warmup_steps": 8, "num_steps": 24, "lr_decay_style": "cosine",
                     "lr_decay_steps": 64, "min_lr": 0.0, "start_wd": 0.1, "end_wd": 0.1, "wd_incr_style": "constant",
                     "wd_incr_steps": 80}
