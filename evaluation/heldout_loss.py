"""Held-out loss on target tokens: a model's mean cross-entropy on the targets of a validation prefix.

    loss = heldout_loss(model, "out/demo/data/pairs_valid", max_tokens=256)   # {"loss", "tokens", "pairs", ...}

Reads the validation split that ``dataset.preprocess`` held out (``PREFIX_inputs_document`` and
``PREFIX_targets_document``), runs every pair ``[inputs|targets]`` on its own (the attention and positions a
packed row gives each pair) and averages the cross-entropy of predicting each target token over all target
tokens: the quantity the local engine's validation reports, without the packing's batching. Pairs longer than
``max_tokens`` are skipped and counted (packing skips them too). Library module behind ``python -m evaluation loss``.
"""
from __future__ import annotations

import torch

from dataset.indexed_dataset import IndexedDataset
from dataset.preprocess_outputs import document_prefix


@torch.no_grad()
def heldout_loss(model, prefix: str, max_tokens: int, max_pairs: int | None = None, batch_size: int = 8) -> dict:
    inputs = IndexedDataset(document_prefix(prefix, "inputs"))
    targets = IndexedDataset(document_prefix(prefix, "targets"))
    if len(inputs) != len(targets):
        raise ValueError(f"{prefix}: {len(inputs)} inputs but {len(targets)} targets; rebuild the split")
    device = next(model.parameters()).device
    pairs, skipped = [], 0
    for i in range(len(inputs) if max_pairs is None else min(max_pairs, len(inputs))):
        source, target = inputs[i].astype("int64").tolist(), targets[i].astype("int64").tolist()
        if len(source) + len(target) > max_tokens or not target:
            skipped += 1
            continue
        pairs.append((source, target))
    total, tokens = 0.0, 0
    for start in range(0, len(pairs), batch_size):
        batch = pairs[start:start + batch_size]
        width = max(len(s) + len(t) for s, t in batch)
        ids = torch.zeros(len(batch), width, dtype=torch.long)
        mask = torch.zeros(len(batch), width, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        for row, (source, target) in enumerate(batch):
            sequence = source + target
            ids[row, :len(sequence)] = torch.tensor(sequence)
            mask[row, :len(sequence)] = 1
            labels[row, len(source):len(sequence)] = torch.tensor(target)
        hidden = model.base_model(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state
        # the state at position j predicts token j + 1: only the target tokens' positions go through the head
        shifted = labels[:, 1:].to(device)
        chosen = shifted != -100
        logits = model.get_output_embeddings()(hidden[:, :-1][chosen]).float()
        total += float(torch.nn.functional.cross_entropy(logits, shifted[chosen], reduction="sum"))
        tokens += int(chosen.sum())
    if not tokens:
        raise ValueError(f"{prefix}: no pair fits {max_tokens} tokens; nothing to score")
    return {"loss": total / tokens, "tokens": tokens, "pairs": len(pairs), "skipped_too_long": skipped,
            "prefix": prefix}
