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
* ``rng_state``: one entry per data-parallel rank, in the fork's structure (``training.local.rng_state``);
* ``args``: every fork argument (``conversion.fork_arg_defaults``) with the run's values: ``iteration``,
  ``consumed_train_samples`` and the batch geometry the data position means, the optimizer settings;
* ``fork_resume``: what ``optimizer`` holds and whether the fork can load it (``fork_resume_entry``; the
  cluster launcher adds ``--no-load-optim`` when it cannot);
* ``local_engine``: what only this engine reads: LoRA adapters and their optimizer state.

Models the fork cannot load (Llama, Mistral, Qwen2, StarCoder2) keep the same ``iter_XXXXXXX`` + tracker
layout with Hugging Face weights and a ``train_state.pt`` instead (``training.local.hf_family.checkpoint``);
``load_resume_state`` tells the two apart by that file and resumes either exactly.

Where a run starts (``plan_start``): a save folder with a tracker resumes from it (everything restored);
otherwise the weights come from ``training.load`` (a release checkpoint or an HF folder) and optimizer,
schedule, RNG and data position start fresh. A run never writes into the folder it loaded from, nor into a
folder that is not its own: a save folder holds ``run_manifest.json``, the record a run (or ``training.launch
submit``) wrote when it first used the folder (``TRAINING_RUN``; ``guardrails.output_paths.check_run_folder``);
anything else that is not empty is refused. While a run writes, it holds a lock on the folder
(``hold_save_folder``, ``guardrails.folder_lock``): a second run on the same folder is refused, not raced.
"""
from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch

from conversion.checkpoint_format import (
    TRACKER_NAME, CheckpointFormatError, discover_layout, load_checkpoint_file, read_tracker, tag_dir_name,
)
from conversion.fork_optimizer import FORK_RESUME_KEY, fork_resume_entry, from_fork_optimizer, to_fork_optimizer
from conversion.vocab_padding import DEFAULT_DIVISIBLE_BY, padded_vocab_size
from guardrails.folder_lock import LOCK_NAME, hold_run_folder
from guardrails.output_paths import check_run_folder, is_leftover
from guardrails.output_records import OutputKind
from training.local.hf_family.checkpoint import (
    is_hf_family_checkpoint, model_from_checkpoint, read_train_state, restore_checkpoint,
)
from training.resume.recorded_args import vocab_divisor_from_args

# a save folder written before records existed (the fork's, or an earlier version's) becomes the run's on the user's word
ADOPT_COMMAND = "python -m training.launch adopt --config RUN.yaml"
TRAINING_RUN = OutputKind("a training run's save folder", "training.finetune", "run_manifest.json")
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
        check_run_folder(save_dir, TRAINING_RUN, "training.save", ADOPT_COMMAND)
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


@contextlib.contextmanager
def hold_save_folder(load: str, save: str, is_main: bool) -> Iterator[None]:
    """Check the start (``plan_start``), then own and lock ``save`` for the run (main process only: the other
    ranks of a run write into it under the main one's lock)."""
    plan_start(load, save)
    if not is_main:
        yield
        return
    with hold_run_folder(save, TRAINING_RUN, "training.save", ADOPT_COMMAND):
        yield


# What a run writes into training.save (engine, metrics, train_data; the fork: tracker, iter_*, tensorboard/ and
# the per-rank logs of --structured-logs-dir SAVE/logs); the demo deletes an earlier run of its own only when
# nothing else is there (the record proves the folder, these names that nothing was added).
JOB_FOLDER_NAME = "slurm"  # training.launch's default run folder inside the save folder (job scripts, logs)
FORK_LOGS_NAME = "logs"  # the fork's logs_rank_N.txt (training.cluster.megatron_argv passes --structured-logs-dir here)
SAVE_FOLDER_NAMES = (TRACKER_NAME, "training_config.json", "metrics.jsonl", "tensorboard", "loss_curve.png",
                     "index_maps", JOB_FOLDER_NAME, FORK_LOGS_NAME, TRAINING_RUN.record, LOCK_NAME, "wandb")
_ITERATION_FOLDER = re.compile(r"^iter_\d{7}$")


def foreign_entries(save_dir: Path) -> list[str]:
    """The entries of a save folder that no run writes (a user's notes put there), sorted."""
    return sorted(entry.name for entry in save_dir.iterdir() if entry.name not in SAVE_FOLDER_NAMES
                  and not _ITERATION_FOLDER.match(entry.name) and not is_leftover(entry.name))


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

    ``optimizer_state`` is the engine's AdamW ``state_dict()`` (``training.local.optim_setup`` groups); it is
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


def holds_hf_family_checkpoint(root: Path) -> bool:
    """True when the tracker of ``root`` points at an iteration in the Hugging Face layout (not the fork's)."""
    try:
        return is_hf_family_checkpoint(Path(root) / tag_dir_name(read_tracker(root)))
    except CheckpointFormatError:
        return False


def vocab_divisor(source: Path) -> int:
    """``make_vocab_size_divisible_by`` recorded in the Megatron checkpoint ``source`` (the fork's default for
    a Hugging Face folder or a save folder of Hugging Face checkpoints), so the run's checkpoints pad the vocab
    as its start did."""
    if not (Path(source) / TRACKER_NAME).is_file() or holds_hf_family_checkpoint(Path(source)):
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
    hf_folder: Path | None = None  # an iteration folder of training.local.hf_family.checkpoint (else the fork's layout)
    hf_train_state: dict[str, Any] | None = None

    def build_model(self) -> torch.nn.Module:
        """The model to resume (under the distributed layout its weights come with ``restore_optimizer``)."""
        if self.hf_folder is not None:
            return model_from_checkpoint(self.hf_folder, self.hf_train_state)
        from training.local.model_init import model_from_state

        return model_from_state(self.hf_config, self.hf_state_dict)

    def restore_optimizer(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, fsdp: bool) -> None:
        """Load the optimizer state (and a distributed checkpoint's weights) once the model is wrapped."""
        if self.hf_folder is not None:
            restore_checkpoint(self.hf_folder, self.hf_train_state, model, optimizer)
            return
        from training.local.distributed import load_optimizer_state

        load_optimizer_state(model, optimizer, self.optimizer_state_for(optimizer.state_dict()), fsdp)

    def optimizer_state_for(self, template: dict[str, Any]) -> dict[str, Any]:
        """The AdamW ``state_dict()`` to load into the optimizer whose own ``state_dict()`` is ``template``."""
        if self.lora_adapters is not None:
            return self.optimizer_state
        return from_fork_optimizer(self.optimizer_state, template, self.hf_config.n_embd, self.hf_config.vocab_size)


def load_resume_state(save_dir: Path, global_batch_size: int, run_cfg: Any = None) -> ResumeState:
    """Everything a resumed run restores from SAVE's latest checkpoint, checked for completeness; with
    ``run_cfg`` (the ``training:`` section) a checkpoint of another seed, length or data is refused by the rule
    the cluster path applies (``training.resume.run_identity``)."""
    from conversion.megatron_checkpoint import read_megatron_checkpoint
    from training.resume.run_identity import check_resume_identity  # it imports ResumeError from here

    folder = Path(save_dir) / tag_dir_name(read_tracker(save_dir))
    if is_hf_family_checkpoint(folder):
        return _hf_family_resume_state(folder, global_batch_size, run_cfg)
    ckpt = read_megatron_checkpoint(Path(save_dir))
    where = Path(save_dir) / tag_dir_name(ckpt.tag)  # the folder that exists: SAVE/iter_0000006
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
    _check_data_position(where, int(ckpt.iteration), consumed, global_batch_size)
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


def _check_data_position(where: str, iteration: int, consumed: Any, global_batch_size: int) -> None:
    if int(consumed) != iteration * global_batch_size:
        raise ResumeError(
            f"{where}: {consumed} samples consumed in {iteration} iterations does not match"
            f" global_batch_size {global_batch_size}; resume with the batch size the run was started with"
        )


def _hf_family_resume_state(folder: Path, global_batch_size: int, run_cfg: Any = None) -> ResumeState:
    """The resume state of an iteration folder of ``training.local.hf_family.checkpoint`` (the same checks as the
    Megatron layout's: complete, the data position, and, with ``run_cfg``, the same run)."""
    from training.resume.run_identity import check_resume_identity  # it imports ResumeError from here

    state = read_train_state(folder)
    if not state.get("rng_state") or state.get("opt_param_scheduler") is None:
        raise ResumeError(f"{folder}: RNG or scheduler state missing; the checkpoint is incomplete")
    consumed = state.get("consumed_train_samples")
    if consumed is None:
        raise ResumeError(f"{folder}: consumed_train_samples missing; cannot find the data position")
    _check_data_position(str(folder), int(state["iteration"]), consumed, global_batch_size)
    if run_cfg is not None:
        check_resume_identity(state.get("args") or {}, run_cfg)
    from transformers import AutoConfig

    return ResumeState(
        iteration=int(state["iteration"]), consumed_train_samples=int(consumed),
        hf_config=AutoConfig.from_pretrained(str(folder)), hf_state_dict={}, optimizer_state=state.get("optimizer"),
        lora_adapters=None, scheduler_state=state["opt_param_scheduler"], rng_states=list(state["rng_state"]),
        hf_folder=folder, hf_train_state=state,
    )
