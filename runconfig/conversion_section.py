"""The ``conversion:`` section of the run config (read by ``conversion.*``).

``tp``/``pp`` are the parallel sizes ``hf_to_megatron`` writes, and ``make_vocab_size_divisible_by`` the fork's
flag of that name: the vocab is padded to a multiple of it times ``tp`` (recorded in the checkpoint's args,
which the fork's command line must repeat; 128 is the fork's default); ``format``, ``dtype`` (``auto`` keeps the
checkpoint's own dtype, so tensor bytes are copied without a round trip through memory), ``max_shard_size``
(``2GB``, ``500MB``, ``1GiB``: decimal units like Hugging Face) and ``tokenizer`` (a ``tokenizer.json`` or
a tokenizer folder; empty = the one recorded in the checkpoint, if present) shape ``megatron_to_hf``'s
output. Command-line flags of those commands override these values.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from runconfig.sizes import parse_size
from runconfig.value_rules import check_values


@dataclass(frozen=True)
class ConversionConfig:
    """Megatron <-> Hugging Face conversion settings."""

    tp: int = 1
    pp: int = 1
    make_vocab_size_divisible_by: int = 128  # the fork's default; its --make-vocab-size-divisible-by must match
    format: Literal["safetensors", "bin"] = "safetensors"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"  # auto = as the checkpoint stores it
    max_shard_size: str = "2GB"
    tokenizer: str = ""

    def __post_init__(self) -> None:
        check_values(self)  # tp, pp and the divisor are positive: runconfig.value_rules
        parse_size(self.max_shard_size)  # raises with the accepted forms
