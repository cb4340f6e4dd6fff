"""What one job runs: the script, the process grid and the argv, decided from the run config and the save folder.

``engine: megatron``: the fork's ``finetune_mtf.py`` (``pretrain_gpt.py`` with ``training.mode: pretrain``) with
``megatron_argv.build_megatron_argv``; the model
shape from ``training.model`` (a preset) or from the start checkpoint's recorded args, the vocab divisor
from those args (the fork compares it), start or resume from the save folder (``checkpointing.plan_start``,
the rule the local engine uses too). ``engine: local``: ``python -m training.finetune --config RUN.yaml``,
which makes the same start/resume decision itself.

    job = plan_job(run_config, "run.yaml", ["training.train_iters=10"])
    job.to_json()   # {"script": "finetune_mtf.py", "nodes": 4, "gpus_per_node": 8, "argv": [...]}
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from conversion.checkpoint_format import TRACKER_NAME
from runconfig.model_presets import ModelShape, preset
from runconfig.run_config import RunConfig
from training.checkpointing import ResumeError, holds_hf_family_checkpoint, plan_start
from training.megatron_argv import StartPoint, build_megatron_argv, fork_script
from training.recorded_args import (
    RecordedCheckpoint, fork_load_flags, read_recorded_checkpoint, shape_from_args, vocab_divisor_from_args,
)

LOCAL_MODULE = "training.finetune"  # the local engine's "script": a module run with python -m


@dataclass(frozen=True)
class JobArgv:
    script: str
    nodes: int
    gpus_per_node: int
    argv: tuple[str, ...]
    decision: str  # start or resume, said in words (printed, not part of the JSON)

    def to_json(self) -> dict[str, Any]:
        return {"script": self.script, "nodes": self.nodes, "gpus_per_node": self.gpus_per_node,
                "argv": list(self.argv)}


def start_point(load: str, save: str) -> StartPoint:
    plan = plan_start(load, save)
    return StartPoint(plan.resume, str(plan.source))


def recorded_if_present(folder: str) -> RecordedCheckpoint | None:
    """The folder's recorded args, or None when it holds no checkpoint yet (argv needs no checkpoint) or one in
    the Hugging Face layout of the local engine (``training.hf_family.checkpoint``; the fork cannot load it)."""
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


def resume_mismatches(recorded: Mapping[str, Any], expected: Mapping[str, Any]) -> list[str]:
    """``key: checkpoint X, run Y`` for every recorded value the run contradicts (unrecorded keys pass)."""
    found = []
    for key, value in expected.items():
        have = recorded.get(key)
        if have is None:
            continue
        if key.endswith("_path"):
            same = Path(str(have)).resolve() == Path(str(value)).resolve()
        else:
            same = have == value
        if not same:
            found.append(f"{key}: checkpoint {have}, run {value}")
    return found


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

    Separate so that ``training.preflight``, which has read them already, does not read the checkpoint again.
    """
    cfg, cluster = run.training, run.cluster
    load_flags: list[str] = []
    no_optim_reason = None
    if start.resume and recorded is not None:  # the model and the data position depend on these
        expected: dict[str, Any] = {
            "num_layers": shape.num_layers, "hidden_size": shape.hidden_size,
            "num_attention_heads": shape.num_attention_heads,
            "max_position_embeddings": shape.max_position_embeddings, "seq_length": cfg.seq_length,
            "global_batch_size": cfg.global_batch_size, "seed": cfg.seed,
        }
        if cfg.mode == "pretrain":  # the fork records --data-path as a list; the split decides the documents
            expected["split"] = cfg.pretrain.split
        else:
            expected["train_weighted_split_paths_path"] = cfg.train_split_file
        problems = resume_mismatches(recorded.args, expected)
        if problems:
            raise ResumeError(
                f"{cfg.save}: its checkpoints come from another run ({'; '.join(problems)}). Resume with the"
                " run's own settings, or point training.save at a new folder to start afresh")
        load_flags, no_optim_reason = fork_load_flags(recorded, cfg.dtype != "float32",
                                                      cfg.use_distributed_optimizer)
    divisor = vocab_divisor_from_args(recorded.args if recorded else None)
    argv = build_megatron_argv(cfg, shape, start, divisor, tuple(load_flags))
    decision = start.describe(cfg.save)
    if no_optim_reason:
        decision += f"; --no-load-optim: {no_optim_reason}"
    return JobArgv(fork_script(cfg), cluster.nodes, cluster.gpus_per_node, tuple(argv), decision)
