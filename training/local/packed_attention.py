"""Packed attention for the local engine: the fork's block-diagonal mask as an SDPA mask, and the packed loss.

The fork's ``get_batch`` gives a boolean ``[B, 1, T, T]`` mask where True = MASKED (causal within one
inputs/targets pair, padding rows and columns fully masked). PyTorch SDPA wants the opposite (True =
attend). With that mask and per-pair position ids, GPT-BigCode under SDPA gives each pair of a packed
row the same logits as that pair run alone (``tests/test_packed_attention.py`` checks it).

A fully masked row (a padding position) would make SDPA's softmax 0/0 = NaN, and NaN times a zero loss
mask is still NaN in the backward pass, so such a row attends to itself (``sdpa_attend_mask``).
That changes only the padding positions' own outputs, which no loss reads and no other position sees.

Every family reaches its attention the same way (``training.local.hf_family``): the decoder stack is the model's
``base_model``, the head ``get_output_embeddings()``, and the mask goes through
``hf_family.attention.model_attention_mask``, which folds in a sliding window where the model has one.

``PackedLossModel`` computes the fork's loss ``sum(CE * loss_mask) / sum(loss_mask)`` but applies the
LM head only at positions whose loss weight is non-zero: the others add exactly 0 to the loss and its
gradient, and on code fine-tuning data most positions are inputs or padding, so this skips most of the
(vocabulary-sized) head. DDP / FSDP wrap this module, so their hooks see the whole forward pass.

    logits = packed_logits(model, batch.tokens, batch.attention_mask, batch.position_ids)
    loss = PackedLossModel(model)(batch.tokens, batch.attention_mask, batch.position_ids,
                                  batch.labels, batch.loss_mask)
"""
from __future__ import annotations

import torch

from training.local.hf_family.attention import model_attention_mask
from training.local.hf_family.families import backbone, head


def sdpa_attend_mask(fork_mask: torch.Tensor, padding_attends_itself: bool = True) -> torch.Tensor:
    """Fork mask (bool ``[B,1,T,T]``, True = masked) -> SDPA mask (True = attend).

    With ``padding_attends_itself`` a row that attends to nothing (padding) attends to its own position.
    """
    if fork_mask.dim() != 4 or fork_mask.shape[-1] != fork_mask.shape[-2]:
        raise ValueError(f"expected a [B, 1, T, T] attention mask, got shape {tuple(fork_mask.shape)}")
    allowed = ~fork_mask.bool()
    if padding_attends_itself:
        empty = ~allowed.any(dim=-1, keepdim=True)
        eye = torch.eye(fork_mask.shape[-1], dtype=torch.bool, device=fork_mask.device)
        allowed = allowed | (empty & eye)
    return allowed


def require_sdpa(model: torch.nn.Module) -> None:
    """Switch a transformers model to SDPA attention (the eager path does not honour a 4-D bool mask)."""
    config = getattr(model, "config", None)
    if config is not None and getattr(config, "_attn_implementation", "sdpa") != "sdpa":
        model.set_attn_implementation("sdpa")


def packed_logits(
    model: torch.nn.Module,
    tokens: torch.Tensor,
    fork_mask: torch.Tensor | None,
    position_ids: torch.Tensor,
) -> torch.Tensor:
    """Logits ``[B, T, V]`` of packed rows: block-diagonal attention, positions restarting per pair.

    ``fork_mask`` None is plain causal attention over the whole row (the model's own fast causal path).
    """
    out = model(
        input_ids=tokens,
        attention_mask=_model_mask(model, fork_mask),
        position_ids=position_ids,
        use_cache=False,
    )
    return out.logits


def _model_mask(model: torch.nn.Module, fork_mask: torch.Tensor | None) -> torch.Tensor | dict | None:
    attend = None if fork_mask is None else sdpa_attend_mask(fork_mask)
    return model_attention_mask(attend, causal_lm(model).config)


def causal_lm(model: torch.nn.Module) -> torch.nn.Module:
    """The ``*ForCausalLM`` inside a peft wrapper (LoRA layers live inside it), or the model."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


class PackedLossModel(torch.nn.Module):
    """The fork's masked loss of one micro-batch of packed rows; the LM head only where the loss looks."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        tokens: torch.Tensor,
        fork_mask: torch.Tensor | None,
        position_ids: torch.Tensor,
        labels: torch.Tensor,
        loss_mask: torch.Tensor,
    ) -> torch.Tensor:
        lm = causal_lm(self.model)
        hidden = backbone(lm)(
            input_ids=tokens,
            attention_mask=_model_mask(lm, fork_mask),
            position_ids=position_ids,
            use_cache=False,
        ).last_hidden_state
        weights = loss_mask.reshape(-1).float()
        keep = weights != 0
        logits = head(lm)(hidden.reshape(-1, hidden.shape[-1])[keep])
        losses = torch.nn.functional.cross_entropy(logits.float(), labels.reshape(-1)[keep], reduction="none")
        # the fork divides by zero (NaN) on a micro-batch without targets; here it contributes 0
        return (losses * weights[keep]).sum() / weights.sum().clamp_min(torch.finfo(weights.dtype).tiny)
