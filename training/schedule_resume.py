"""How a resumed run's learning-rate schedule continues: one decision for both engines, said in words.

The rule (README, "Extending a run"): on a resume the run config's schedule values apply (``lr``, ``min_lr``,
``lr_warmup_samples``, ``lr_decay_style``, ``weight_decay``), with one exception: when
``training.lr_decay_samples`` is 0 ("decay over the whole run"), a resumed run **keeps the decay window its
checkpoint decays over**. So raising ``training.train_iters`` after a run finished (or hit its time limit)
extends it without moving the schedule under the trained weights: the extra iterations train at ``min_lr``.
To decay over the whole extended run instead, set ``training.lr_decay_samples`` to the new total
(``train_iters x global_batch_size``); any explicit value is used as written.

The fork compares its scheduler's values with the checkpoint's and asserts they are equal
(``OptimizerParamScheduler._check_and_set``); its weight-decay horizon is ``--train-samples``, so every extension
trips it. When any value differs, the launcher passes ``--override-opt_param-scheduler`` with the resolved values,
so the fork uses exactly what the local engine uses (its schedule position, consumed samples, is restored either
way). ``notes`` says what will happen; preflight, the job's log and the local engine print them.

    decision = resume_schedule(cfg, checkpoint_scheduler_state, consumed_samples)
    decision.decay_samples, decision.override, decision.notes
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from training.lr_schedule import SampleLRSchedule


@dataclass(frozen=True)
class ScheduleDecision:
    decay_samples: int  # the window the learning rate decays over in this run
    override: bool = False  # the fork needs --override-opt_param-scheduler (the checkpoint's values differ)
    notes: tuple[str, ...] = ()  # what will happen, one sentence each
    warnings: tuple[str, ...] = ()  # what will happen and is probably not meant

    def lines(self) -> list[str]:
        """The notes and warnings as the run prints them (``schedule: ...``, ``warning: ...``)."""
        return [f"schedule: {note}" for note in self.notes] + [f"warning: {note}" for note in self.warnings]


def fresh_schedule(cfg: Any) -> ScheduleDecision:
    """A start: the config's schedule, decaying over ``lr_decay_samples`` or the whole run."""
    return ScheduleDecision(cfg.decay_samples)


def _run_state(cfg: Any, decay: int) -> dict[str, Any]:
    """The scheduler values the fork compares with its checkpoint's (all but the position, ``num_steps``)."""
    state = SampleLRSchedule.from_config(cfg, decay).state_dict(0)
    del state["num_steps"]
    return state


def resume_schedule(cfg: Any, state: Mapping[str, Any] | None, consumed: int) -> ScheduleDecision:
    """The schedule of a run resumed at ``consumed`` samples from a checkpoint whose scheduler entry is ``state``
    (the fork's ``OptimizerParamScheduler.state_dict()``; None or empty when the checkpoint holds none)."""
    gbs, total = cfg.global_batch_size, cfg.train_iters * cfg.global_batch_size
    state = dict(state or {})
    recorded_decay = state.get("lr_decay_steps")
    keep = not cfg.lr_decay_samples and recorded_decay is not None
    decay = int(recorded_decay) if keep else cfg.decay_samples
    notes: list[str] = []
    warnings: list[str] = []
    iteration = consumed // gbs
    ended = state.get("wd_incr_steps")  # the fork's horizon: the checkpointed run's --train-samples
    if consumed >= total:
        notes.append(f"the checkpoint is at iteration {iteration} = training.train_iters: a resubmission trains"
                     " nothing more (raise training.train_iters to extend the run)")
    elif ended is not None and int(ended) != total:
        notes.append(f"extends the run: its checkpoints were made for {int(ended) // gbs} iterations, it now"
                     f" continues from iteration {iteration} to {cfg.train_iters}")
    if not state:
        return ScheduleDecision(decay, False, tuple(notes), ())
    if cfg.lr_decay_style != "constant" and decay <= cfg.lr_warmup_samples:
        raise ValueError(f"the resumed run would decay over {decay} samples (the checkpoint's window), not more than"
                         f" its lr_warmup_samples {cfg.lr_warmup_samples}; set training.lr_decay_samples")
    mine = _run_state(cfg, decay)
    changed = {key: (state[key], mine[key]) for key in mine if key in state and state[key] != mine[key]}
    if keep and decay < total and consumed < total:
        after = decay // gbs + 1
        text = (f"training.lr_decay_samples is 0, so the resumed run keeps its checkpoint's decay window of {decay}"
                f" samples (to iteration {decay // gbs}): iterations {max(after, iteration + 1)}..{cfg.train_iters}"
                f" train at min_lr {cfg.min_lr}; set training.lr_decay_samples={total} to decay over the whole run")
        (warnings if cfg.min_lr == 0 and cfg.lr_decay_style != "constant" else notes).append(
            text + (" (at lr 0 they change nothing)" if cfg.min_lr == 0 and cfg.lr_decay_style != "constant" else ""))
    for key, (have, want) in changed.items():
        if key == "wd_incr_steps":
            continue  # the extension itself, said above; the weight decay is constant, so it changes nothing
        notes.append(f"{key}: checkpoint {have!r}, this run {want!r} (the run config's value applies from"
                     f" iteration {iteration + 1})")
    before = _lr_of_state(state, consumed)
    after_lr = SampleLRSchedule.from_config(cfg, decay).lr_at(consumed)
    if before is not None and abs(before - after_lr) > 1e-12 * max(1.0, abs(before)):
        notes.append(f"the learning rate at the resume point changes from {before:.6g} (the checkpoint's schedule) to"
                     f" {after_lr:.6g}")
    return ScheduleDecision(decay, bool(changed), tuple(notes), tuple(warnings))


def _lr_of_state(state: Mapping[str, Any], consumed: int) -> float | None:
    """The learning rate the checkpoint's own schedule gives at ``consumed`` samples (None if it cannot tell)."""
    try:
        schedule = SampleLRSchedule(float(state["max_lr"]), float(state["min_lr"]), int(state["lr_warmup_steps"]),
                                    int(state["lr_decay_steps"]), str(state["lr_decay_style"]))
    except (KeyError, TypeError, ValueError):
        return None
    return schedule.lr_at(consumed)
