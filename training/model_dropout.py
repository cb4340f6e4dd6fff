"""The local engine's dropout: ``training.hidden_dropout`` / ``attention_dropout``, else the start checkpoint's.

The fork gets the same two values as ``--hidden-dropout`` / ``--attention-dropout`` (``training.fork_job``), so one
config trains with one dropout on either engine. In GPT-BigCode terms the fork's hidden dropout is
``embd_pdrop`` and ``resid_pdrop`` (embeddings, attention output, MLP output) and its attention dropout is
``attn_pdrop`` (the attention probabilities). Unset keys keep what the model was loaded with: a Megatron
checkpoint's recorded ``hidden_dropout``/``attention_dropout`` (``conversion.fork_namespace``), or an HF folder's
``config.json``. The values are written into the config too, so the run's checkpoints record them.

    hidden, attention = apply_run_dropout(model, cfg)     # before LoRA wraps the model
"""
from __future__ import annotations

from typing import Any

import torch


def apply_run_dropout(model: torch.nn.Module, cfg: Any) -> tuple[float, float] | None:
    """Set the run's dropout on a GPT-BigCode ``model`` (in place); returns (hidden, attention), or None for a model
    without GPT-BigCode's dropout settings (left as loaded)."""
    config = model.config
    if not all(hasattr(config, name) for name in ("resid_pdrop", "embd_pdrop", "attn_pdrop")):
        return None
    hidden = config.resid_pdrop if cfg.hidden_dropout is None else cfg.hidden_dropout
    attention = config.attn_pdrop if cfg.attention_dropout is None else cfg.attention_dropout
    config.resid_pdrop = config.embd_pdrop = float(hidden)
    config.attn_pdrop = float(attention)
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):  # embeddings, attention output and MLP: all hidden dropout
            module.p = float(hidden)
        if hasattr(module, "attn_dropout") and isinstance(module.attn_dropout, float):  # the SDPA dropout_p
            module.attn_dropout = float(attention)
    return float(hidden), float(attention)
