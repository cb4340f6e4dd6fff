"""The fork's vocab padding: how many embedding rows a Megatron checkpoint holds, and what the extra rows are.

The BigCode fork (``megatron/tokenizer/tokenizer.py``, ``_vocab_size_with_padding``) rounds the tokenizer's
size up to a multiple of ``make_vocab_size_divisible_by x tensor_model_parallel_size`` and builds the word
embeddings (and the tied LM head) with that many rows, split evenly across the TP ranks. A checkpoint records
``args.padded_vocab_size`` (the rounded size) and ``args.make_vocab_size_divisible_by`` (the divisor as given on
the command line, not multiplied by TP); the fork refuses to load one whose values differ from its own.

The toolkit does the same:

* ``hf_to_megatron`` pads with **zero rows** (the fork initialises its padding rows randomly like every row;
  its own ``tools/checkpoint_saver_megatron.py`` repeats the last row). Zeros keep the padding tokens'
  logits at exactly 0 and carry no information that could be mistaken for a token; no tokenizer id ever
  reaches them as input. They are trained (as in the fork) only through the softmax of the LM head.
* it records the real size as ``args.true_vocab_size`` (the name the fork's checkpoint tools use for it), so
  ``megatron_to_hf`` knows how many rows to keep even without a tokenizer;
* ``megatron_to_hf`` writes ``vocab_size`` = the real vocab (the recorded ``true_vocab_size``, else the
  tokenizer's size, as for checkpoints the fork saved, else the padded size with a warning) and drops the
  padding rows.

Library module, no command line.
"""
from __future__ import annotations

from pathlib import Path

import torch

DEFAULT_DIVISIBLE_BY = 128  # the fork's --make-vocab-size-divisible-by default
TRUE_VOCAB_ARG = "true_vocab_size"


class VocabPaddingError(ValueError):
    """A vocab size that does not fit the checkpoint's padded embedding; the message says which is which."""


def padded_vocab_size(vocab_size: int, divisible_by: int, tp: int) -> int:
    """``vocab_size`` rounded up to a multiple of ``divisible_by * tp`` (the fork's rule)."""
    if vocab_size < 1 or divisible_by < 1 or tp < 1:
        raise VocabPaddingError(
            f"vocab size {vocab_size}, make_vocab_size_divisible_by {divisible_by} and tp {tp} must all be >= 1"
        )
    multiple = divisible_by * tp
    return -(-vocab_size // multiple) * multiple


def pad_rows(tensor: torch.Tensor, rows: int) -> torch.Tensor:
    """``tensor`` with zero rows appended up to ``rows`` rows (itself when it already has that many)."""
    if tensor.shape[0] == rows:
        return tensor
    if tensor.shape[0] > rows:
        raise VocabPaddingError(f"cannot pad {tensor.shape[0]} rows down to {rows}")
    padding = torch.zeros((rows - tensor.shape[0],) + tuple(tensor.shape[1:]), dtype=tensor.dtype)
    return torch.cat([tensor, padding.to(tensor.device)], dim=0)


def tokenizer_vocab_size(tokenizer: str | Path) -> int:
    """The size the fork gives a ``TokenizerFromFile`` tokenizer: every id, added tokens included."""
    from tokenizers import Tokenizer

    path = Path(tokenizer)
    path = path / "tokenizer.json" if path.is_dir() else path
    return Tokenizer.from_file(str(path)).get_vocab_size(with_added_tokens=True)


def tokenizer_rows_problem(tokenizer_size: int, padded: int, recorded: int | None, divisible_by: int,
                           tp: int) -> str | None:
    """Why a tokenizer of ``tokenizer_size`` tokens cannot be the one a checkpoint of ``padded`` rows was made
    with (None when it can be): more tokens than the model's vocabulary (the recorded ``true_vocab_size``, else
    the rows), or, when nothing is recorded (the fork saved it, building its rows from its tokenizer), a size the
    fork pads to another number of rows. A smaller tokenizer than a recorded vocabulary is a model's own (an HF
    model's vocabulary may be padded beyond its tokenizer)."""
    vocabulary = recorded if recorded is not None else padded
    if tokenizer_size > vocabulary:
        return (f"{tokenizer_size} tokens, but the checkpoint's vocabulary has {vocabulary}"
                f" ({'true_vocab_size' if recorded is not None else 'embedding rows'}): ids beyond it mean nothing")
    if recorded is None and padded_vocab_size(tokenizer_size, divisible_by, tp) != padded:
        return (f"{tokenizer_size} tokens, padded to a multiple of make_vocab_size_divisible_by x TP ="
                f" {divisible_by} x {tp} give {padded_vocab_size(tokenizer_size, divisible_by, tp)} rows, but the"
                f" checkpoint has {padded}")
    return None


def real_vocab_size(padded: int, recorded: int | None, tokenizer_size: int | None) -> tuple[int, str | None]:
    """(rows to keep, warning or None) for a checkpoint with ``padded`` rows.

    The size the checkpoint records wins (it is the converted model's own vocab, so HF -> Megatron -> HF is
    exact), then the tokenizer's size (checkpoints the fork saved record none); with neither, every row is
    kept. A tokenizer that disagrees, or has more tokens than the embedding has rows, is reported.
    """
    if recorded is not None and not 0 < recorded <= padded:
        raise VocabPaddingError(
            f"args.true_vocab_size is {recorded} but the embedding has {padded} rows (args.padded_vocab_size)"
        )
    if tokenizer_size is not None and tokenizer_size > padded:
        kept = recorded or padded
        return kept, (f"the tokenizer has {tokenizer_size} tokens but the checkpoint's embedding only {padded}"
                      f" rows; keeping {kept} rows (is it the tokenizer the model was trained with?)")
    if recorded is not None:
        warning = None
        if tokenizer_size is not None and tokenizer_size != recorded:
            warning = (f"the tokenizer has {tokenizer_size} tokens but the checkpoint records true_vocab_size"
                       f" {recorded}; keeping {recorded} rows")
        return recorded, warning
    if tokenizer_size is not None:
        return tokenizer_size, None
    return padded, (f"no tokenizer given and the checkpoint records no true_vocab_size: keeping all {padded}"
                    " rows, padding included (pass --tokenizer to drop the padding rows)")
