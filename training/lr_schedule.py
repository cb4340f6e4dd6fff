"""The fork's learning-rate schedule, counted in samples: linear warmup, then cosine/linear decay to min_lr.

This is Megatron's ``OptimizerParamScheduler.get_lr`` with steps counted in consumed samples
(``--lr-warmup-samples``, ``--lr-decay-samples``): the scheduler starts at 0 samples and is stepped
by ``global_batch_size`` *after* every optimizer step, so iteration ``i`` (1-based) trains with the
rate at ``(i - 1) * global_batch_size`` samples; with warmup the very first update uses lr = 0, as
in the fork. Past the decay window the rate stays at ``min_lr``.

    schedule = SampleLRSchedule.from_config(cfg)
    lr = schedule.lr_at(consumed_samples)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SampleLRSchedule:
    max_lr: float
    min_lr: float
    warmup_samples: int
    decay_samples: int
    decay_style: str = "cosine"
    weight_decay: float = 0.0  # constant (the fork's default --weight-decay-incr-style constant)
    wd_incr_steps: int = 0  # the fork's wd_incr_steps: train_iters x global_batch_size samples

    def __post_init__(self) -> None:
        if self.decay_style not in ("cosine", "linear", "constant"):
            raise ValueError(f"lr_decay_style {self.decay_style!r} is not one of cosine, linear, constant")
        if self.decay_style != "constant" and self.decay_samples <= self.warmup_samples:
            raise ValueError(
                f"lr_decay_samples ({self.decay_samples}) must exceed lr_warmup_samples ({self.warmup_samples});"
                " lower the warmup or raise training.lr_decay_samples"
            )

    @classmethod
    def from_config(cls, cfg: Any, decay_samples: int | None = None) -> "SampleLRSchedule":
        """Build from a ``TrainingConfig``; ``lr_decay_samples: 0`` means the whole run. ``decay_samples``: the
        window a resumed run decays over (``training.schedule_resume``), when it is not the config's."""
        decay = cfg.decay_samples if decay_samples is None else decay_samples
        return cls(cfg.lr, cfg.min_lr, cfg.lr_warmup_samples, decay, cfg.lr_decay_style, cfg.weight_decay,
                   cfg.train_iters * cfg.global_batch_size)

    def lr_at(self, samples: int) -> float:
        """Learning rate after ``samples`` consumed samples."""
        if self.warmup_samples > 0 and samples <= self.warmup_samples:
            return self.max_lr * float(samples) / float(self.warmup_samples)
        if self.decay_style == "constant":
            return self.max_lr
        if samples > self.decay_samples:
            return self.min_lr
        ratio = float(samples - self.warmup_samples) / float(self.decay_samples - self.warmup_samples)
        if self.decay_style == "linear":
            coeff = 1.0 - ratio
        else:
            coeff = 0.5 * (math.cos(math.pi * ratio) + 1.0)
        return self.min_lr + coeff * (self.max_lr - self.min_lr)

    def state_dict(self, samples: int) -> dict[str, Any]:
        """The fork's ``OptimizerParamScheduler.state_dict()`` (its keys and value types; steps are samples, as
        in the fork). The fork asserts these equal what its own flags give unless it runs with
        ``--use-checkpoint-opt_param-scheduler`` or ``--override-opt_param-scheduler``
        (``training.schedule_resume``)."""
        return {
            "max_lr": float(self.max_lr),
            "lr_warmup_steps": int(self.warmup_samples),
            "num_steps": int(samples),
            "lr_decay_style": self.decay_style,
            "lr_decay_steps": int(self.decay_samples),
            "min_lr": float(self.min_lr),
            "start_wd": float(self.weight_decay),
            "end_wd": float(self.weight_decay),
            "wd_incr_style": "constant",
            "wd_incr_steps": int(self.wd_incr_steps),
        }
