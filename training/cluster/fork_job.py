"""What one job runs: the script, the process grid and the argv, decided from the run config and the save folder.

``engine: megatron``: the fork's ``finetune_mtf.py`` (``pretrain_gpt.py`` with ``training.mode: pretrain``) with
``megatron_argv.build_megatron_argv``; the model shape from ``training.model`` (a preset) or from the start
checkpoint's recorded args, the vocab divisor and (unless the config sets them) the dropouts from those args,
start or resume from the save folder (``checkpointing.plan_start``, the rule the local engine uses too); a resume
must be the same run (``training.resume.run_identity``) and continues its LR schedule as the local engine does
(``training.resume.schedule_resume``). ``engine: local``: ``python -m training.finetune --config RUN.yaml``, which makes
the same start/resume decision itself.

    job = plan_job(run_config, "run.yaml", ["training.train_iters=10"])
    job.to_json()   # {"script": "finetune_mtf.py", "nodes": 4, "gpus_per_node": 8, "argv": [...]}
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

from conversion.checkpoint_format import TRACKER_NAME
from runconfig.model_presets import ModelShape, preset
from runconfig.run_config import RunConfig
from conversion.fork_arg_defaults import FORK_ARG_DEFAULTS
from training.local.checkpointing import ResumeError, holds_hf_family_checkpoint, plan_start
from training.cluster.megatron_argv import StartPoint, build_megatron_argv, fork_script
from training.resume.recorded_args import (
    RecordedCheckpoint, fork_load_flags, read_recorded_checkpoint, shape_from_args, vocab_divisor_from_args,
)
from training.resume.run_identity import check_resume_identity
from training.resume.schedule_resume import ScheduleDecision, fresh_schedule, resume_schedule

LOCAL_MODULE = "training.finetune"  # the local engine's "script": a module run with python -m


@dataclass(frozen=True)
class JobArgv:
    script: str
    nodes: int
    gpus_per_node: int
    argv: tuple[str, ...]
    decision: str  # start or resume (and the schedule's notes), said in words (printed, not part of the JSON)
    schedule: ScheduleDecision | None = None  # the fork's: how its LR schedule continues (preflight says it)

    def to_json(self) -> dict[str, Any]:
        return {"script": self.script, "nodes": self.nodes, "gpus_per_node": self.gpus_per_node,
                "argv": list(self.argv)}


def start_point(load: str, save: str) -> StartPoint:
    plan = plan_start(load, save)
    return StartPoint(plan.resume, str(plan.source))


def recorded_if_present(folder: str) -> RecordedCheckpoint | None:
    """The folder's recorded args, or None when it holds no checkpoint yet (argv needs no checkpoint) or one in
    the Hugging Face layout of the local engine (``training.local.hf_family.checkpoint``; the fork cannot load it)."""
    if not (Path(folder) / TRACKER_NAME).is_file() or holds_hf_family_checkpoint(Path(folder)):
        return None
    return read_recorded_checkpoint(folder)


def run_shape(model: str, recorded: RecordedCheckpoint | None, load: str) -> ModelShape:
    if model:
        return preset(model)
    if recorded is None:
        raise ValueError(f"training.model is empty and {load} holds no checkpoint to read the shape from;"
                         " name a preset (e.g. training.model=starcoderbase-1b)")
    return shape_from_args(recorded.args)


def plan_job(run: RunConfig, config_path: str | None, overrides: Sequence[str]) -> JobArgv:
    cfg, cluster = run.training, run.cluster
    if cfg.engine == "local":
        if config_path is None:
            raise ValueError("the local engine is run with --config RUN.yaml; give the run config file")
        start = start_point(cfg.load, cfg.save)
        return JobArgv(LOCAL_MODULE, cluster.nodes, cluster.gpus_per_node,
                       ("--config", str(config_path), *overrides), start.describe(cfg.save))
    start = start_point(cfg.load, cfg.save)
    recorded = recorded_if_present(start.load)
    return plan_fork_job(run, start, recorded, run_shape(cfg.model, recorded, start.load))


def plan_fork_job(run: RunConfig, start: StartPoint, recorded: RecordedCheckpoint | None,
                  shape: ModelShape) -> JobArgv:
    """``plan_job`` for ``engine: megatron`` once the save folder and the start checkpoint have been read.

    Separate so that ``training.cluster.preflight``, which has read them already, does not read the checkpoint again.
    """
    cfg, cluster = run.training, run.cluster
    load_flags: list[str] = []
    no_optim_reason = None
    schedule = fresh_schedule(cfg)
    if start.resume and recorded is not None:  # the model and the data position depend on these
        check_resume_identity(recorded.args, cfg, shape)
        load_flags, no_optim_reason = fork_load_flags(recorded, cfg.compute_dtype(cluster.request_gpus) != "float32",
                                                      cfg.use_distributed_optimizer)
        schedule = fork_resume_schedule(cfg, recorded, no_optim_reason is not None)
    divisor = vocab_divisor_from_args(recorded.args if recorded else None)
    argv = build_megatron_argv(cfg, shape, start, divisor, tuple(load_flags), dropout=run_dropout(cfg, recorded),
                               decay_samples=schedule.decay_samples, override_scheduler=schedule.override,
                               on_gpus=cluster.request_gpus)
    decision = start.describe(cfg.save)
    if no_optim_reason:
        decision += f"; --no-load-optim: {no_optim_reason}"
    decision += "".join(f"\n{line}" for line in schedule.lines())
    return JobArgv(fork_script(cfg), cluster.nodes, cluster.gpus_per_node, tuple(argv), decision, schedule)


def run_dropout(cfg: Any, recorded: RecordedCheckpoint | None) -> tuple[float, float] | None:
    """(hidden, attention) dropout: the config's, else what the start checkpoint records (the fork's default 0.1
    when it records none); None when there is no checkpoint to read and the config sets none."""
    if recorded is None and (cfg.hidden_dropout is None or cfg.attention_dropout is None):
        return None
    args = recorded.args if recorded is not None else {}
    # unrecorded: the fork's own default of each flag
    hidden = cfg.hidden_dropout if cfg.hidden_dropout is not None else \
        args.get("hidden_dropout", FORK_ARG_DEFAULTS["hidden_dropout"])
    attention = cfg.attention_dropout if cfg.attention_dropout is not None else \
        args.get("attention_dropout", FORK_ARG_DEFAULTS["attention_dropout"])
    return float(hidden), float(attention)


def fork_resume_schedule(cfg: Any, recorded: RecordedCheckpoint, without_optimizer: bool) -> ScheduleDecision:
    """``training.resume.schedule_resume``'s decision for the fork resuming ``recorded``. With ``--no-load-optim`` the fork
    restores no scheduler state at all: nothing to override, and its schedule restarts (said as a warning)."""
    consumed = int(recorded.args.get("consumed_train_samples") or 0)
    decision = resume_schedule(cfg, recorded.scheduler, consumed)
    if not without_optimizer:
        return decision
    restart = (f"with --no-load-optim the fork restores no LR schedule either: it restarts at sample 0 (warmup"
               f" again) while the data continues from sample {consumed}; the local engine would continue it")
    return replace(decision, override=False, warnings=(*decision.warnings, restart))
