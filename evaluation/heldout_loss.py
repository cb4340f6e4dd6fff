"""Held-out loss on target tokens: a model's mean cross-entropy on the targets of a validation prefix.

    loss = heldout_loss(model, "out/demo/data/pairs_valid", max_tokens=256)   # {"loss", "tokens", "pairs", ...}

Reads the validation split that ``dataset.preprocess`` held out (``PREFIX_inputs_document`` and
``PREFIX_targets_document``), runs every pair ``[inputs|targets]`` on its own (the attention and positions a
packed row gives each pair) and averages the cross-entropy of predicting each target token over all target
tokens: the quantity the local engine's validation reports, without the packing's batching. Pairs longer than
``max_tokens`` are skipped and counted (packing skips them too). ``check_model_meets_data`` first refuses a model
whose tokenizer did not make the data, or whose vocabulary its ids exceed. Library module behind
``python -m evaluation loss``.
"""
from __future__ import annotations

from pathlib import Path

import torch

from dataset.data_vocab import data_vocab
from dataset.indexed_dataset import IndexedDataset
from dataset.preprocess_outputs import document_prefix
from dataset.tokenizer_match import check_data_tokenizer, tokenizer_json


def check_model_meets_data(model_dir: Path, vocab_size: int, prefix: str) -> str | None:
    """Refuse a model whose tokenizer is not the one that made ``prefix`` (``dataset.tokenizer_match``) or whose
    vocabulary is smaller than the data's ids (torch would fail on the first such id); returns a warning line
    when there is nothing to check the tokenizer against."""
    if not tokenizer_json(model_dir).is_file():
        warning = f"warning: {model_dir} holds no tokenizer.json, so it cannot be checked against {prefix}'s tokenizer"
    else:
        warning = check_data_tokenizer(prefix, model_dir)
    need = data_vocab(Path(prefix))
    if need.vocab_size > vocab_size:
        raise ValueError(f"{prefix} holds token ids up to {need.vocab_size - 1} ({need.source}), but {model_dir} has"
                         f" {vocab_size} token embeddings; score it with a model of the data's tokenizer")
    return warning


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
