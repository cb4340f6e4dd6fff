"""Model shapes of the StarCoderBase family, named by ``training.model`` (e.g. ``starcoderbase-1b``).

The values are the published GPT-BigCode configs (``bigcode/starcoderbase-1b`` ... ``bigcode/starcoderbase``
on the Hugging Face hub: ``n_layer``, ``n_embd``, ``n_head``, ``n_inner``, ``n_positions``, ``vocab_size``);
all are multi-query with learned absolute positions. ``training.model: ""`` takes the shape from the release
checkpoint's recorded args instead (``training.release_args``). Torch-free, so the run config validates the
name when it loads.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelShape:
    """What the fork's ``--num-layers`` ... ``--max-position-embeddings`` say about a model."""

    num_layers: int
    hidden_size: int
    num_attention_heads: int
    ffn_hidden_size: int
    max_position_embeddings: int
    vocab_size: int = 49152  # the StarCoder tokenizer's, before the fork pads it


PRESETS: dict[str, ModelShape] = {
    "starcoderbase-1b": ModelShape(24, 2048, 16, 8192, 8192),
    "starcoderbase-3b": ModelShape(36, 2816, 22, 11264, 8192),
    "starcoderbase-7b": ModelShape(42, 4096, 32, 16384, 8192),
    "starcoderbase": ModelShape(40, 6144, 48, 24576, 8192),  # 15.5B
}


def preset(name: str) -> ModelShape:
    """The shape named ``name``; an unknown name is an error listing the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"model {name!r} is not a known preset (known: {', '.join(PRESETS)});"
                         " or leave training.model empty to take the shape from the release checkpoint") from None
