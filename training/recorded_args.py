"""What a Megatron checkpoint folder records about itself: its args, layout and optimizer files.

The fork's argv must agree with the checkpoint it loads: ``check_checkpoint_args`` compares the model
shape, ``make_vocab_size_divisible_by``, ``padded_vocab_size``, the tokenizer type and the parallel sizes.
Reading is safe (``conversion.checkpoint_format``: no code runs) and cheap (``meta=True``: no tensor
data is read, so a 15.5B checkpoint costs what its pickle header costs)::

    recorded = read_recorded_checkpoint("ckpt/starcoderbase")     # the tracker's tag
    shape = shape_from_args(recorded.args)                        # runconfig.model_presets.ModelShape

Library module, no command line.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from conversion.checkpoint_format import CheckpointFormatError, discover_layout, load_checkpoint_file
from conversion.fork_optimizer import fork_needs_no_load_optim, read_fork_resume
from conversion.vocab_padding import DEFAULT_DIVISIBLE_BY
from runconfig.model_presets import ModelShape



@dataclass(frozen=True)
class RecordedCheckpoint:
    root: Path
    tag: str
    tp: int
    pp: int
    dist_opt: bool
    args: dict[str, Any]  # vars() of the checkpoint's args Namespace (enums as the stand-ins load them)
    embedding_rows: int  # rows of word_embeddings.weight summed over the TP ranks (the padded vocab)
    has_optimizer: bool  # an optimizer entry (or, with the distributed optimizer, optim.pt files) is there
    scheduler: dict[str, Any] | None = None  # the opt_param_scheduler entry (the fork's scheduler state), if any


def read_recorded_checkpoint(root: str | Path, tag: str | None = None) -> RecordedCheckpoint:
    """Read ``root``'s args and layout from its first rank file (and each TP rank's embedding shape)."""
    layout = discover_layout(root, tag)
    first = load_checkpoint_file(layout.model_file(0, 0), meta=True)
    args = first.get("args")
    if args is None:
        raise CheckpointFormatError(f"{layout.model_file(0, 0)}: holds no 'args'; cannot tell the model's shape")
    rows = 0
    for tp_rank in range(layout.tp):
        shard = first if tp_rank == 0 else load_checkpoint_file(layout.model_file(tp_rank, 0), meta=True)
        try:
            rows += shard["model"]["language_model"]["embedding"]["word_embeddings"]["weight"].shape[0]
        except (KeyError, TypeError):
            raise CheckpointFormatError(
                f"{layout.model_file(tp_rank, 0)}: no model.language_model.embedding.word_embeddings.weight") from None
    holder = first  # the file with the optimizer and scheduler entries: optim.pt with the distributed optimizer
    if layout.dist_opt:
        tag_folder = layout.model_file(0, 0).parent.parent
        optim_files = sorted(tag_folder.glob("*/optim.pt"))
        has_optimizer = bool(optim_files)
        try:
            holder = load_checkpoint_file(optim_files[0], meta=True) if optim_files else {}
        except CheckpointFormatError:  # only the scheduler is read from it here; the fork reports the file itself
            holder = {}
    else:
        has_optimizer = first.get("optimizer") is not None
    scheduler = holder.get("opt_param_scheduler")
    return RecordedCheckpoint(Path(root), layout.tag, layout.tp, layout.pp, layout.dist_opt, dict(vars(args)),
                              rows, has_optimizer, dict(scheduler) if isinstance(scheduler, dict) else None)


def shape_from_args(args: Mapping[str, Any]) -> ModelShape:
    """The model shape a checkpoint's args record (``ffn_hidden_size`` defaults to 4 x hidden, as the fork's)."""
    missing = [k for k in ("num_layers", "hidden_size", "num_attention_heads", "max_position_embeddings")
               if args.get(k) is None]
    if missing:
        raise CheckpointFormatError(f"checkpoint args lack {', '.join(missing)}; name a preset in training.model")
    hidden = int(args["hidden_size"])
    return ModelShape(int(args["num_layers"]), hidden, int(args["num_attention_heads"]),
                      int(args.get("ffn_hidden_size") or 4 * hidden), int(args["max_position_embeddings"]),
                      int(args.get("padded_vocab_size") or 0))


def vocab_divisor_from_args(args: Mapping[str, Any] | None) -> int:
    """``make_vocab_size_divisible_by`` as the checkpoint records it (the fork compares it), else the default."""
    value = (args or {}).get("make_vocab_size_divisible_by")
    return int(value) if value else DEFAULT_DIVISIBLE_BY


def fork_load_flags(recorded: RecordedCheckpoint, mixed_precision: bool,
                    distributed_optimizer: bool) -> tuple[list[str], str | None]:
    """Extra load flags the fork needs to resume ``recorded``, and why (None when it needs none).

    The one place that turns the checkpoint's ``fork_resume`` record (written by the local engine:
    ``conversion.fork_optimizer``) into ``--no-load-optim``: a LoRA run's optimizer covers only the adapters,
    and the engine writes the fork's ``FP32Optimizer`` structure only, which a ``--bf16``/``--fp16`` or
    distributed-optimizer fork run cannot load. A checkpoint the fork saved itself has no record: nothing added.
    """
    reason = fork_needs_no_load_optim(read_fork_resume(recorded.root, recorded.tag), mixed_precision,
                                      distributed_optimizer)
    return (["--no-load-optim"], reason) if reason else ([], None)
