"""The packed rows' attention mask as a model's attention layers read it: one 4-D mask, or one per layer type.

``transformers`` takes a prepared 4-D mask as it is, for every family (``masking_utils``: "If the mask is
already 4D, simply return as-is"), so the fork's block-diagonal mask (``training.local.packed_attention``) reaches
Llama, Mistral, Qwen2 and StarCoder2 unchanged, with the per-document position ids. What a prepared mask
skips is the model's own sliding window: Mistral and StarCoder2 (``config.sliding_window`` set) limit every
layer to the last ``window`` keys, Qwen2 with ``use_sliding_window`` limits only the layers that
``config.layer_types`` marks ``sliding_attention``. The window is folded in here (query ``q`` sees key ``k``
when ``q - k < window``, as ``masking_utils.sliding_window_overlay``), and a model with two kinds of layers
gets a mapping ``{layer type: mask}``, which those models accept in place of a mask. Rows no longer than the
window need nothing: the mask is returned as it came. ``tests/test_hf_families.py`` checks that a packed row
gives each document the logits it gets alone, a document longer than the window included.

    mask = model_attention_mask(attend, model.config)   # attend: bool [B, 1, T, T], True = attend
"""
from __future__ import annotations

from typing import Any

import torch

SLIDING = "sliding_attention"


def layer_windows(config: Any) -> dict[str, int | None]:
    """Window of each layer type the model has (None = full attention); ``""`` when it has no layer types."""
    window = getattr(config, "sliding_window", None)
    types = getattr(config, "layer_types", None)
    if not types:
        return {"": window}
    return {kind: (window if kind == SLIDING else None) for kind in dict.fromkeys(types)}


def _within(attend: torch.Tensor, window: int | None) -> torch.Tensor:
    length = attend.shape[-1]
    if window is None or window >= length:
        return attend
    steps = torch.arange(length, device=attend.device)
    band = (steps[:, None] - steps[None, :]) < window  # the diagonal stays: a padding row still sees itself
    return attend & band


def model_attention_mask(attend: torch.Tensor | None, config: Any) -> torch.Tensor | dict[str, torch.Tensor] | None:
    """``attend`` (None: the model's own causal path) limited to each layer type's window."""
    if attend is None:
        return None
    masks = {kind: _within(attend, window) for kind, window in layer_windows(config).items()}
    if len(masks) == 1:
        return next(iter(masks.values()))
    return masks
