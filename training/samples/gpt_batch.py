"""Per-micro-batch tensors for continued pretraining, as the fork's ``pretrain_gpt.get_batch`` makes them.

Input: rows ``[B, T+1]`` of GPT samples (``training.samples.gpt_dataset``). Output: the same :class:`MTFBatch` the
fine-tuning path uses, so the loss model and the engine are shared:

* ``tokens = row[:, :-1]``, ``labels = row[:, 1:]``;
* ``loss_mask``: 1 for every label that is not the pad id (``<fim_pad>``, which FIM appends when a sample
  got shorter; the fork counts those too, which teaches the model to emit padding); with
  ``eod_mask_loss`` also 0 where the *input* token is EOD (the fork's ``get_ltor_masks_and_position_ids``:
  the first token of a document is not predicted from the previous document's EOD);
* ``attention_mask``: None by default, i.e. causal over the whole row (documents see the documents before
  them in the row, as the fork and the StarCoder cookbook train; the model then takes SDPA's fast causal
  path instead of reading a ``[B, 1, T, T]`` mask); with ``reset_attention_mask`` bool ``[B, 1, T, T]``,
  True = masked, causal within each document only, where a document runs up to and including its EOD;
* ``position_ids``: ``0 .. T-1``, or restarting at 0 after each EOD with ``reset_position_ids``. Then the
  mask is never None: given restarting positions and no mask, ``transformers`` (5.x) takes the row for packed
  sequences and stops attention at every restart, which the fork does only with ``reset_attention_mask``;
  ``reset_position_ids`` alone gets the explicit causal mask over the whole row.

``segment_ids`` numbers the documents of each row from 1 (EOD belongs to the document it ends).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from training.samples.mtf_batch import MTFBatch, packed_attention_mask, positions_per_segment


@dataclass(frozen=True)
class DocumentMasking:
    """The fork's ``--reset-position-ids``, ``--reset-attention-mask`` and ``--eod-mask-loss``."""

    reset_position_ids: bool = False
    reset_attention_mask: bool = False
    eod_mask_loss: bool = False


def document_ids(tokens: torch.Tensor, eod: int) -> torch.Tensor:
    """1, 1, ..., 2, 2, ...: the document each position is in; a new one starts after each EOD."""
    is_eod = (tokens == eod).long()
    return torch.cumsum(is_eod, dim=1) - is_eod + 1


def get_gpt_batch(rows: torch.Tensor, eod: int, pad_id: int, masking: DocumentMasking = DocumentMasking()) -> MTFBatch:
    """The fork's pretraining ``get_batch`` on one micro-batch of rows ``[B, T+1]`` (padding left out of the loss)."""
    rows = rows.long()
    if rows.ndim != 2 or rows.shape[1] < 2:
        raise ValueError(f"expected rows [B, T+1] with T >= 1, got shape {tuple(rows.shape)}")
    tokens, labels = rows[:, :-1].contiguous(), rows[:, 1:].contiguous()
    documents = document_ids(tokens, eod)
    loss_mask = labels != pad_id
    if masking.eod_mask_loss:
        loss_mask &= tokens != eod
    length = tokens.shape[1]
    # document ids are never 0, so packed_attention_mask masks no padding rows
    if masking.reset_attention_mask:
        attention_mask = packed_attention_mask(documents)
    elif masking.reset_position_ids:  # causal across documents, written out (see the module docstring)
        attention_mask = packed_attention_mask(torch.ones_like(documents))
    else:
        attention_mask = None
    if masking.reset_position_ids:
        position_ids = positions_per_segment(documents)
    else:
        position_ids = torch.arange(length, device=rows.device).expand(tokens.shape[0], length)
    return MTFBatch(tokens=tokens, labels=labels, loss_mask=loss_mask.to(torch.float32),
                    attention_mask=attention_mask, position_ids=position_ids.contiguous(), segment_ids=documents)
