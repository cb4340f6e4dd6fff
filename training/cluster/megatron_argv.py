"""The fork's ``finetune_mtf.py`` argument list, built from the run config's ``training:`` section.

With ``training.mode: pretrain`` the same list serves ``pretrain_gpt.py`` (branch ``multi-query-attention``),
its data and loss flags from ``training.cluster.pretrain_argv``.

Pure: everything it needs comes in as values (the section, the model shape, where the run starts, the
vocab divisor the start checkpoint records); ``training.launch argv`` gathers those and prints the list.
Every flag is spelled as the fork's ``megatron/arguments.py`` (branch ``mtf``) spells it;
``tests/test_megatron_argv.py`` checks each one against the fork's own flag list, and
``tests/test_fork_parser.py`` runs every preset's argv through the fork's own ``parse_args`` + ``validate_args``
(with ``MEGATRON_DIR``/``MEGATRON_MQA_DIR`` set to checkouts). Rules the fork enforces and this follows:

* sample-based schedule: ``--train-samples`` with ``--lr-warmup-samples``/``--lr-decay-samples`` (the
  fork's ``validate_args`` refuses a mix with the ``*-iters`` forms);
* ``--tokenizer-type TokenizerFromFile`` always (``finetune_mtf.py`` defaults to GPT2BPETokenizer; the
  ``...WithFIM`` type appends tokens to the StarCoder vocab) and ``--attention-head-type multiquery`` always
  (the default is multihead and ``--use-checkpoint-args`` does not set it);
* ``--bf16``/``--fp16`` with ``--DDP-impl local``; ``--save`` with ``--save-interval``;
* a start loads the release folder with ``--finetune --no-load-optim --no-load-rng`` and saves elsewhere; a
  resume loads the save folder without them, so iteration, samples, optimizer and scheduler continue (the
  fork's ``load_checkpoint`` turns ``--finetune`` off by itself when ``--load`` holds a tracker, so the
  decision is made here, from the save folder, and never left to that flag);
* a start on branch ``mtf`` also passes ``--reset-progress``: with ``--finetune`` turned off, the fork takes
  ``consumed_train_samples``/``consumed_valid_samples`` from the start checkpoint's recorded args (a release
  ``conversion.prepare_release`` made from a pretraining ``iter_*`` keeps its count), so without it a fresh run
  begins at that data position; ``--reset-progress`` sets iteration and both counts to 0, as the local engine
  starts. Branch ``multi-query-attention`` (pretraining) has no such flag and keeps ``--finetune``, which
  there already leaves both counts at 0.

    argv = build_megatron_argv(cfg, preset("starcoderbase-1b"), StartPoint(False, "ckpt/base"), 128)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from runconfig.model_presets import ModelShape
from runconfig.training_section import TrainingConfig
from training.local.checkpointing import FORK_LOGS_NAME
from training.cluster.pretrain_argv import PRETRAIN_SCRIPT, pretrain_data_flags

FINETUNE_SCRIPT = "finetune_mtf.py"
FINETUNE_FLAGS = ("--finetune", "--no-load-optim", "--no-load-rng")  # a start from a release checkpoint
RESET_PROGRESS = "--reset-progress"  # a start on branch mtf: iteration and data position 0 (see the docstring)


@dataclass(frozen=True)
class StartPoint:
    """Where a run starts: ``resume`` from the save folder's own checkpoints, or a fresh start from ``load``."""

    resume: bool
    load: str  # the folder passed as --load

    def describe(self, save: str) -> str:
        if self.resume:
            return f"resume: {save} holds this run's checkpoints; loading them (iteration, optimizer, scheduler continue)"
        return (f"start: {save} has no checkpoint; loading weights only from {self.load} (optimizer, scheduler,"
                " RNG and data position start fresh)")


def _fmt(value: float | int) -> str:
    """Numbers as Python's repr writes them (``2e-05``, ``0.95``): argparse's float()/int() read them back."""
    return repr(value)


def precision_flags(dtype: str) -> list[str]:
    """The flags of a resolved dtype (``TrainingConfig.compute_dtype``); mixed precision needs the fork's local DDP."""
    flag = {"bfloat16": "--bf16", "float16": "--fp16"}.get(dtype)
    return [flag, "--DDP-impl", "local"] if flag else []


def fork_script(cfg: TrainingConfig) -> str:
    """``finetune_mtf.py`` (branch mtf), or ``pretrain_gpt.py`` (branch multi-query-attention) for pretraining."""
    return PRETRAIN_SCRIPT if cfg.mode == "pretrain" else FINETUNE_SCRIPT


def data_flags(cfg: TrainingConfig) -> list[str]:
    """The weighted split files and the MTF loss flags, or ``training.cluster.pretrain_argv``'s for pretraining."""
    if cfg.mode == "pretrain":
        return pretrain_data_flags(cfg.pretrain)
    argv = ["--train-weighted-split-paths-path", cfg.train_split_file]
    if cfg.valid_split_file:
        argv += ["--valid-weighted-split-paths-path", cfg.valid_split_file]
    if cfg.loss_on_targets_only:
        argv.append("--loss-on-targets-only")
    if cfg.norm_target_loss:
        argv.append("--norm-target-loss")
    return argv


def build_megatron_argv(cfg: TrainingConfig, shape: ModelShape, start: StartPoint, vocab_divisor: int,
                        load_flags: tuple[str, ...] = (), *, dropout: tuple[float, float] | None = None,
                        decay_samples: int | None = None, override_scheduler: bool = False,
                        on_gpus: bool = True) -> list[str]:
    """The arguments after ``fork_script(cfg)``, in a fixed order; ``cfg.extra_args`` come last.

    ``load_flags``: further load flags the resumed checkpoint needs (``recorded_args.fork_load_flags``);
    ``dropout``: (hidden, attention), the config's or the start checkpoint's (None: no checkpoint was read, the
    fork's defaults); ``decay_samples``/``override_scheduler``: a resumed run's schedule
    (``training.resume.schedule_resume``; default: the config's window); ``on_gpus``: what ``dtype: auto`` resolves for.
    """
    if not cfg.save:
        raise ValueError("training.save is empty: name the folder the fork saves checkpoints to")
    if not cfg.tokenizer:
        raise ValueError("training.tokenizer is empty: the fork needs --tokenizer-file (the tokenizer.json"
                         " the data was preprocessed with)")
    if not cfg.train_split_file and cfg.mode != "pretrain":
        raise ValueError("training.train_split_file is empty: name the train split file dataset.splits wrote")
    decay = cfg.decay_samples if decay_samples is None else decay_samples
    argv = [
        "--num-layers", str(shape.num_layers),
        "--hidden-size", str(shape.hidden_size),
        "--num-attention-heads", str(shape.num_attention_heads),
        "--ffn-hidden-size", str(shape.ffn_hidden_size),
        "--max-position-embeddings", str(shape.max_position_embeddings),
        "--attention-head-type", "multiquery",
        "--seq-length", str(cfg.seq_length),
        *(["--hidden-dropout", _fmt(dropout[0]), "--attention-dropout", _fmt(dropout[1])] if dropout else []),
        "--make-vocab-size-divisible-by", str(vocab_divisor),
        "--tensor-model-parallel-size", str(cfg.tensor_model_parallel_size),
        "--pipeline-model-parallel-size", str(cfg.pipeline_model_parallel_size),
    ]
    if cfg.sequence_parallel:
        argv.append("--sequence-parallel")
    if cfg.use_distributed_optimizer:
        argv.append("--use-distributed-optimizer")
    argv += [
        "--micro-batch-size", str(cfg.micro_batch_size),
        "--global-batch-size", str(cfg.global_batch_size),
        "--train-samples", str(cfg.train_iters * cfg.global_batch_size),
        "--lr", _fmt(cfg.lr),
        "--min-lr", _fmt(cfg.min_lr),
        "--lr-decay-style", cfg.lr_decay_style,
        "--lr-warmup-samples", str(cfg.lr_warmup_samples),
        "--lr-decay-samples", str(decay),
        "--weight-decay", _fmt(cfg.weight_decay),
        "--adam-beta1", _fmt(cfg.adam_beta1),
        "--adam-beta2", _fmt(cfg.adam_beta2),
        "--adam-eps", _fmt(cfg.adam_eps),
        "--clip-grad", _fmt(cfg.clip_grad),
        "--seed", str(cfg.seed),
        *precision_flags(cfg.compute_dtype(on_gpus)),
        "--tokenizer-type", "TokenizerFromFile",
        "--tokenizer-file", cfg.tokenizer,
    ]
    argv += data_flags(cfg)
    argv += ["--load", start.load, "--save", cfg.save, "--save-interval", str(cfg.save_interval)]
    if not start.resume:
        argv += FINETUNE_FLAGS
        if cfg.mode != "pretrain":
            argv.append(RESET_PROGRESS)
    argv += list(load_flags)
    if override_scheduler:
        argv.append("--override-opt_param-scheduler")
    argv += ["--eval-interval", str(cfg.eval_interval), "--eval-iters", str(cfg.eval_iters),
             "--log-interval", str(cfg.log_interval)]
    if cfg.tensorboard:
        argv += ["--tensorboard-dir", str(Path(cfg.save) / "tensorboard")]
    argv += ["--structured-logs", "--structured-logs-dir", str(Path(cfg.save) / FORK_LOGS_NAME)]
    if cfg.use_flash_attn:
        argv.append("--use-flash-attn")
    if cfg.recompute_activations:
        argv.append("--recompute-activations")
    return argv + list(cfg.extra_args)
