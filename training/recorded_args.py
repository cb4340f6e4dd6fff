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
from runconfig.model_presets import ModelShape

FORK_DEFAULT_VOCAB_DIVISOR = 128  # the fork's --make-vocab-size-divisible-by default


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
    if layout.dist_opt:
        tag_folder = layout.model_file(0, 0).parent.parent
        has_optimizer = any(tag_folder.glob("*/optim.pt"))
    else:
        has_optimizer = first.get("optimizer") is not None
    return RecordedCheckpoint(Path(root), layout.tag, layout.tp, layout.pp, layout.dist_opt, dict(vars(args)),
                              rows, has_optimizer)


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
    return int(value) if value else FORK_DEFAULT_VOCAB_DIVISOR


def fork_load_flags(recorded_args: Mapping[str, Any]) -> list[str]:
    """Extra load flags the fork needs for a checkpoint it resumes from, given that checkpoint's args.

    Hook: a checkpoint whose optimizer state the fork cannot load (one written by the local engine, or with
    another mixed precision / distributed-optimizer setting) will record that in its args; this is the one
    place that turns the record into ``--no-load-optim`` (and similar). No such field is recorded yet, so
    nothing is added.
    """
    return []


def padded_vocab_size(vocab_size: int, divisor: int, tp: int) -> int:
    """The fork's ``_vocab_size_with_padding``: round up to a multiple of ``divisor x tp``."""
    multiple = divisor * tp
    return -(-vocab_size // multiple) * multiple
