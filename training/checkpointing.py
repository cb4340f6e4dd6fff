"""Save and resume the local engine in the fork's checkpoint layout, through ``conversion.megatron_checkpoint``.

Layout (written atomically by ``write_megatron_checkpoint``: ``iter_XXXXXXX`` is built under a
temporary name, renamed into place, then the tracker is replaced)::

    SAVE/latest_checkpointed_iteration.txt
    SAVE/iter_0000030/mp_rank_00/model_optim_rng.pt

What a checkpoint holds besides the weights, so that a resumed run is bitwise the run that was killed, and
so that the fork (``megatron/checkpointing.py``, branch ``mtf``) can take the job over mid-run (``--load SAVE``
without ``--finetune``, TP=1 PP=1, fp32):

* ``optimizer``: the fork's ``FP32Optimizer`` state (``conversion.fork_optimizer``: AdamW moments in the fork's
  parameter order and shapes, its two param groups with ``wd_mult``/``lr_mult``); absent for LoRA runs;
* ``opt_param_scheduler``: the fork's ``OptimizerParamScheduler`` entry, steps counted in samples;
* ``rng_state``: one entry per data-parallel rank, in the fork's structure (``training.rng_state``);
* ``args``: every fork argument (``conversion.fork_arg_defaults``) with the run's values: ``iteration``,
  ``consumed_train_samples`` and the batch geometry the data position means, the optimizer settings;
* ``fork_resume``: what ``optimizer`` holds and whether the fork can load it (``fork_resume_entry``; the
  cluster launcher adds ``--no-load-optim`` when it cannot);
* ``local_engine``: what only this engine reads: LoRA adapters and their optimizer state.

Where a run starts (``plan_start``): a save folder with a tracker resumes from it (everything restored);
otherwise the weights come from ``training.load`` (a release checkpoint or an HF folder) and optimizer,
schedule, RNG and data position start fresh. A run never writes into the folder it loaded from, nor into a
folder holding anything a run does not write (``save_folder_problem``; ``guardrails.output_paths``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from conversion.checkpoint_format import TRACKER_NAME, discover_layout, load_checkpoint_file
from conversion.fork_optimizer import FORK_RESUME_KEY, fork_resume_entry, from_fork_optimizer, to_fork_optimizer
from conversion.vocab_padding import DEFAULT_DIVISIBLE_BY, padded_vocab_size
from guardrails.output_paths import claim_folder, output_entries
from training.recorded_args import vocab_divisor_from_args

LOCAL_ENGINE_KEY = "local_engine"
LOCAL_ENGINE_FORMAT = "codeft.local_engine.v2"
LORA_NOT_FOR_FORK = ("LoRA run: the optimizer state covers the adapters only, which the fork's model does not"
                     " have (the saved weights are merged); resume it in the fork with --no-load-optim")


class ResumeError(ValueError):
    """A save/load combination that cannot be resumed or started safely; the message says how to fix it."""


@dataclass(frozen=True)
class StartPlan:
    resume: bool  # True: continue from SAVE's latest checkpoint; False: weights only from LOAD
    source: Path


def plan_start(load: str, save: str) -> StartPlan:
    """Decide where the run starts; refuses layouts that would overwrite the starting checkpoint."""
    if not save:
        raise ResumeError("training.save is empty: name a folder for the checkpoints (it is also the resume point)")
    save_dir = Path(save)
    if load and Path(load).resolve() == save_dir.resolve():
        raise ResumeError(
            f"training.save and training.load are the same folder ({save}); the run would write over the"
            " checkpoint it starts from. Choose a new folder for training.save"
        )
    tracker = save_dir / TRACKER_NAME
    if not tracker.exists() or tracker.read_text(encoding="utf-8").strip() != "release":  # release: refused below
        claim_folder(save_dir, "a training run's save folder", save_folder_problem, "training.save")
    if tracker.exists():
        tag = tracker.read_text(encoding="utf-8").strip()
        if tag == "release":
            raise ResumeError(
                f"{tracker} says 'release': that folder is a starting checkpoint, not a run's save"
                " folder. Point training.load at it and training.save at a new folder"
            )
        if not tag.isdigit():
            raise ResumeError(f"{tracker}: expected 'release' or an iteration number, got {tag!r}")
        return StartPlan(True, save_dir)
    if not load:
        raise ResumeError("training.load is empty and training.save has no checkpoint to resume from")
    return StartPlan(False, Path(load))


# What a run writes into training.save (engine, metrics, train_data; the fork: tracker, iter_*, tensorboard/ and
# the per-rank logs of --structured-logs-dir SAVE/logs): anything else there is the user's.
JOB_FOLDER_NAME = "slurm"  # training.launch's default run folder inside the save folder (job scripts, logs)
FORK_LOGS_NAME = "logs"  # the fork's logs_rank_N.txt (training.megatron_argv passes --structured-logs-dir here)
SAVE_FOLDER_NAMES = (TRACKER_NAME, "training_config.json", "metrics.jsonl", "tensorboard", "loss_curve.png",
                     "index_maps", JOB_FOLDER_NAME, FORK_LOGS_NAME)
_ITERATION_FOLDER = re.compile(r"^iter_\d{7}$")


def save_folder_problem(save_dir: Path) -> str | None:
    """None when ``save_dir`` holds only what a training run writes there, else why it is not a save folder."""
    others = sorted(entry.name for entry in output_entries(save_dir) if entry.name not in SAVE_FOLDER_NAMES
                    and not _ITERATION_FOLDER.match(entry.name))
    return f"holds files a training run does not write ({', '.join(others[:5])})" if others else None


def save_checkpoint(
    save_dir: Path,
    iteration: int,
    hf_state_dict: dict[str, torch.Tensor],
    hf_config: Any,
    optimizer_state: dict[str, Any],
    lora_adapters: dict[str, torch.Tensor] | None,
    scheduler_state: dict[str, Any],
    rng_states: list[dict[str, Any]],
    run_args: dict[str, Any],
    divisible_by: int = DEFAULT_DIVISIBLE_BY,
    trained_dtype: str = "float32",
) -> Path:
    """Write ``SAVE/iter_{iteration:07d}`` (atomic) and point the tracker at it; returns the iteration folder.

    ``optimizer_state`` is the engine's AdamW ``state_dict()`` (``training.optim_setup`` groups); it is
    stored as the fork's ``FP32Optimizer`` state unless the run is LoRA (then under ``local_engine``).
    """
    from conversion.megatron_checkpoint import write_megatron_checkpoint

    local: dict[str, Any] = {"format": LOCAL_ENGINE_FORMAT, "lora_adapters": lora_adapters, "torch_optimizer": None}
    if lora_adapters is None:
        padded = padded_vocab_size(hf_config.vocab_size, divisible_by, 1)
        fork_optimizer = to_fork_optimizer(optimizer_state, hf_config.n_embd, padded)
        not_for_fork = None
    else:
        fork_optimizer, not_for_fork = None, LORA_NOT_FOR_FORK
        local["torch_optimizer"] = optimizer_state
    return write_megatron_checkpoint(
        Path(save_dir), iteration, hf_state_dict, hf_config,
        optimizer=fork_optimizer, opt_param_scheduler=scheduler_state, rng_state=rng_states,
        extra_args={**run_args, "iteration": iteration}, divisible_by=divisible_by,
        extra_keys={LOCAL_ENGINE_KEY: local, FORK_RESUME_KEY: fork_resume_entry(not_for_fork, trained_dtype)},
    )


def vocab_divisor(source: Path) -> int:
    """``make_vocab_size_divisible_by`` recorded in the Megatron checkpoint ``source`` (the fork's default for
    a Hugging Face folder), so the run's checkpoints pad the vocab as its start did."""
    if not (Path(source) / TRACKER_NAME).is_file():
        return DEFAULT_DIVISIBLE_BY
    args = load_checkpoint_file(discover_layout(source).model_file(0, 0), meta=True).get("args")
    return vocab_divisor_from_args(vars(args) if args is not None else None)


@dataclass
class ResumeState:
    iteration: int
    consumed_train_samples: int
    hf_config: Any  # transformers.GPTBigCodeConfig, as read_megatron_checkpoint builds it
    hf_state_dict: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any]  # the fork's FP32Optimizer entry, or (LoRA) the AdamW state_dict itself
    lora_adapters: dict[str, torch.Tensor] | None
    scheduler_state: dict[str, Any]
    rng_states: list[dict[str, Any]]

    def optimizer_state_for(self, template: dict[str, Any]) -> dict[str, Any]:
        """The AdamW ``state_dict()`` to load into the optimizer whose own ``state_dict()`` is ``template``."""
        if self.lora_adapters is not None:
            return self.optimizer_state
        return from_fork_optimizer(self.optimizer_state, template, self.hf_config.n_embd, self.hf_config.vocab_size)


def load_resume_state(save_dir: Path, global_batch_size: int, run_cfg: Any = None) -> ResumeState:
    """Everything a resumed run restores from SAVE's latest checkpoint, checked for completeness; with
    ``run_cfg`` (the ``training:`` section) a checkpoint of another seed, length or data is refused by the rule
    the cluster path applies (``training.run_identity``)."""
    from conversion.megatron_checkpoint import read_megatron_checkpoint
    from training.run_identity import check_resume_identity  # it imports ResumeError from here

    ckpt = read_megatron_checkpoint(Path(save_dir))
    where = f"{save_dir}/{ckpt.tag}"
    local = ckpt.extra.get(LOCAL_ENGINE_KEY)
    if not isinstance(local, dict) or local.get("format") != LOCAL_ENGINE_FORMAT:
        raise ResumeError(
            f"{where}: not a checkpoint of this engine's (a checkpoint written by the fork cannot be resumed"
            " exactly here); start from it as training.load with a new training.save instead"
        )
    lora_adapters = local.get("lora_adapters")
    optimizer = local.get("torch_optimizer") if lora_adapters is not None else ckpt.optimizer
    if not isinstance(optimizer, dict):
        raise ResumeError(f"{where}: optimizer state missing; the checkpoint is incomplete")
    if not ckpt.rng_state or ckpt.opt_param_scheduler is None:
        raise ResumeError(f"{where}: RNG or scheduler state missing; the checkpoint is incomplete")
    consumed = getattr(ckpt.args, "consumed_train_samples", None)
    if consumed is None:
        raise ResumeError(f"{where}: args.consumed_train_samples missing; cannot find the data position")
    if int(consumed) != int(ckpt.iteration) * global_batch_size:
        raise ResumeError(
            f"{where}: {consumed} samples consumed in {ckpt.iteration} iterations does not match"
            f" global_batch_size {global_batch_size}; resume with the batch size the run was started with"
        )
    if run_cfg is not None:
        check_resume_identity(vars(ckpt.args), run_cfg)
    return ResumeState(
        iteration=int(ckpt.iteration),
        consumed_train_samples=int(consumed),
        hf_config=ckpt.hf_config,
        hf_state_dict=ckpt.hf_state_dict,
        optimizer_state=optimizer,
        lora_adapters=lora_adapters,
        scheduler_state=ckpt.opt_param_scheduler,
        rng_states=list(ckpt.rng_state),
    )
