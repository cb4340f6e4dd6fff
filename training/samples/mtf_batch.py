"""Per-micro-batch tensors exactly as the fork's ``finetune_mtf.get_batch`` makes them from packed rows.

Input: the collated items of :mod:`training.samples.packed_dataset` (``decoder_token_ids``,
``decoder_segment_ids``, ``decoder_is_inputs``, each ``[B, T+1]``). Output (:class:`MTFBatch`), with the
fork's flags (``loss_on_targets_only=True`` by default), no position/attention reset, no EOD loss masking:

* ``tokens = row[:, :-1]``, ``labels = row[:, 1:]``;
* ``loss_mask`` float32 ``[B, T]``: 1 where the label is a target token (``~is_inputs[:, 1:]``) and not
  the pad id (with ``loss_on_targets_only=False``, as the fork's other branch: every label that is not pad). With ``norm_target_loss`` every run of equal values of the *flattened* micro-batch is
  divided by its length (the fork's ``fast_normalize``), so each target's weights sum to 1; the fork
  returns it flattened to ``[B*T]``, here it is reshaped back to ``[B, T]`` (same values, same order);
* ``attention_mask`` bool ``[B, 1, T, T]``, **True = masked** (Megatron's convention): causal within a
  pair only (block-diagonal), padding rows and columns fully masked (``get_packed_attention_mask``);
* ``position_ids`` int64 ``[B, T]``: restart at 0 for every run of equal segment ids, padding included.

``training.local.packed_attention.sdpa_attend_mask`` turns the mask into what PyTorch SDPA expects (True = attend).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class MTFBatch:
    """One micro-batch, as ``get_batch`` returns it (plus the segment ids it derives everything from)."""

    tokens: torch.Tensor  # int64 [B, T]
    labels: torch.Tensor  # int64 [B, T]
    loss_mask: torch.Tensor  # float32 [B, T]
    attention_mask: torch.Tensor | None  # bool [B, 1, T, T], True = masked; None = causal (pretraining)
    position_ids: torch.Tensor  # int64 [B, T]
    segment_ids: torch.Tensor  # int64 [B, T]


def normalize_runs(values: torch.Tensor) -> torch.Tensor:
    """Divide every run of equal consecutive values by the run's length (``fast_normalize``), 1-D."""
    if values.ndim != 1:
        raise ValueError(f"expected a flat tensor, got shape {tuple(values.shape)}")
    if values.numel() == 0:
        return values.clone()
    starts = torch.ones_like(values, dtype=torch.bool)
    starts[1:] = values[1:] != values[:-1]
    run_ids = torch.cumsum(starts.long(), dim=0) - 1
    counts = torch.bincount(run_ids)
    return values / counts[run_ids]


def positions_per_segment(segment_ids: torch.Tensor) -> torch.Tensor:
    """0, 1, 2, ... restarting wherever the segment id changes (each row independently)."""
    batch, length = segment_ids.shape
    steps = torch.arange(length, dtype=torch.long, device=segment_ids.device).expand(batch, length)
    starts = torch.ones_like(segment_ids, dtype=torch.bool)
    starts[:, 1:] = segment_ids[:, 1:] != segment_ids[:, :-1]
    run_start = torch.where(starts, steps, torch.zeros_like(steps)).cummax(dim=1).values
    return steps - run_start


def packed_attention_mask(segment_ids: torch.Tensor) -> torch.Tensor:
    """bool ``[B, 1, T, T]``, True = masked: causal, same non-padding segment only."""
    length = segment_ids.shape[1]
    causal = torch.tril(torch.ones(length, length, dtype=torch.bool, device=segment_ids.device))
    real = segment_ids != 0
    same = segment_ids[:, None, :, None] == segment_ids[:, None, None, :]
    allowed = causal[None, None] & real[:, None, :, None] & real[:, None, None, :] & same
    return ~allowed


def get_batch(items: dict[str, torch.Tensor], pad_id: int, norm_target_loss: bool,
              loss_on_targets_only: bool = True) -> MTFBatch:
    """The fork's ``get_batch`` on one collated micro-batch of packed rows ``[B, T+1]``."""
    rows = items["decoder_token_ids"].long()
    segments_full = items["decoder_segment_ids"].long()
    is_inputs = items["decoder_is_inputs"].bool()
    if rows.ndim != 2 or rows.shape != segments_full.shape or rows.shape != is_inputs.shape:
        raise ValueError(
            "decoder_token_ids, decoder_segment_ids and decoder_is_inputs must share one [B, T+1] shape, got "
            f"{tuple(rows.shape)}, {tuple(segments_full.shape)}, {tuple(is_inputs.shape)}"
        )
    tokens = rows[:, :-1].contiguous()
    labels = rows[:, 1:].contiguous()
    segment_ids = segments_full[:, :-1].contiguous()
    loss_mask = labels != pad_id
    if loss_on_targets_only:
        loss_mask = loss_mask & ~is_inputs[:, 1:]
    loss_mask = loss_mask.to(torch.float32)
    if norm_target_loss:
        loss_mask = normalize_runs(loss_mask.reshape(-1)).reshape(labels.shape)
    return MTFBatch(
        tokens=tokens,
        labels=labels,
        loss_mask=loss_mask,
        attention_mask=packed_attention_mask(segment_ids),
        position_ids=positions_per_segment(segment_ids),
        segment_ids=segment_ids,
    )
