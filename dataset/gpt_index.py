"""The fork's GPT pretraining index maps (``doc_idx``, ``sample_idx``, ``shuffle_idx``), from document sizes only.

What ``megatron/data/gpt_dataset.py`` (branch ``multi-query-attention``) and its C++ ``build_sample_idx``
compute, reproduced exactly in numpy (golden files: tests/fixtures/fork_fim/):

* ``--split 969,30,1`` -> document ranges (:func:`split_document_ranges`, the fork's
  ``get_train_valid_test_split_``: shares of ``round(share * N)``, the rounding error taken off every bound);
* epochs: the smallest ``e`` with ``(e * T - 1) // seq_length >= num_samples`` (``T``: tokens of the range);
  the last epoch is shuffled separately when it yields fewer than ``int(0.8 * ((T - 1) // seq_length))``
  samples, so a small last epoch does not spread its documents over the whole run;
* ``doc_idx``: the range's documents repeated per epoch, int32, shuffled by ``RandomState(seed)`` (one block
  for ``e`` epochs, or ``e - 1`` then 1);
* ``sample_idx``: int32 ``[samples + 1, 2]`` of ``(index into doc_idx, offset)``: sample ``k`` starts at
  token ``k * seq_length`` of the concatenated documents and ends one token into the next (samples overlap
  by one token, which is the last label of one and the first input of the next);
* ``shuffle_idx``: uint32 (int64 from 2**32 - 1 samples) ``arange`` shuffled by the same generator, the
  separate last epoch shuffled on its own after the others.

Library module (used by ``training.gpt_index_cache`` and the split planner); no command line.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dataset.memory_budget import check_fits

LAST_EPOCH_SHARE = 0.80  # the fork's threshold for shuffling the last epoch separately


class GPTIndexError(ValueError):
    """Index maps that cannot be built (empty range, a sequence too short...)."""


@dataclass(frozen=True)
class EpochPlan:
    """How many epochs of a range ``num_samples`` needs, and whether the last one is shuffled apart."""

    tokens_per_epoch: int
    samples_per_epoch: int  # (T - 1) // seq_length
    epochs: int
    separate_last_epoch: bool
    samples_before_last_epoch: int  # ((epochs - 1) * T - 1) // seq_length (0 for one epoch)


@dataclass(frozen=True)
class GPTIndex:
    """The three maps, with the fork's dtypes, and the epoch plan they came from."""

    doc_idx: np.ndarray  # int32 [epochs * documents]
    sample_idx: np.ndarray  # int32 [samples + 1, 2]
    shuffle_idx: np.ndarray  # uint32 (or int64) [samples]
    plan: EpochPlan


def parse_split_weights(splits: str) -> list[float]:
    """``"969,30,1"`` (or ``/``-separated, or one number) -> three weights, as the fork reads ``--split``."""
    sep = "," if "," in splits else "/"
    try:
        weights = [float(s) for s in splits.split(sep)]
    except ValueError as exc:
        raise GPTIndexError(f"--split {splits!r}: expected numbers like 969,30,1") from exc
    weights = (weights + [0.0, 0.0])[:3]
    if any(w < 0 or not math.isfinite(w) for w in weights) or sum(weights) <= 0:
        raise GPTIndexError(f"--split {splits!r}: weights must be non-negative with a positive sum")
    return weights


def split_document_ranges(splits: str, num_documents: int) -> list[int]:
    """The four bounds ``[train_start, valid_start, test_start, end]`` of the fork's train/valid/test ranges."""
    weights = parse_split_weights(splits)
    total = sum(weights)
    bounds = [0]
    for weight in weights:
        bounds.append(bounds[-1] + int(round(weight / total * float(num_documents))))
    diff = bounds[-1] - num_documents
    return [bounds[0]] + [b - diff for b in bounds[1:]]


def plan_epochs(tokens_per_epoch: int, seq_length: int, num_samples: int) -> EpochPlan:
    """The fork's ``_num_epochs`` and its separate-last-epoch rule."""
    if tokens_per_epoch < 2 or seq_length < 2:
        raise GPTIndexError(f"need at least 2 tokens in the range and seq_length >= 2 "
                            f"(got {tokens_per_epoch} tokens, seq_length {seq_length})")
    # smallest e >= 1 with e * T - 1 >= num_samples * seq_length (the fork counts up one epoch at a time)
    epochs = max(1, -(-(num_samples * seq_length + 1) // tokens_per_epoch))
    per_epoch = (tokens_per_epoch - 1) // seq_length
    if epochs == 1:
        return EpochPlan(tokens_per_epoch, per_epoch, 1, False, 0)
    before_last = ((epochs - 1) * tokens_per_epoch - 1) // seq_length
    last = num_samples - before_last
    return EpochPlan(tokens_per_epoch, per_epoch, epochs, last < int(LAST_EPOCH_SHARE * per_epoch), before_last)


def build_doc_idx(documents: np.ndarray, epochs: int, rng: np.random.RandomState,
                  separate_last_epoch: bool) -> np.ndarray:
    """``documents`` repeated ``epochs`` times (int32), shuffled as one block, or as ``epochs - 1`` and 1."""
    if separate_last_epoch and epochs > 1:
        first = build_doc_idx(documents, epochs - 1, rng, False)
        return np.concatenate((first, build_doc_idx(documents, 1, rng, False)))
    doc_idx = np.tile(np.asarray(documents), epochs).astype(np.int32)
    rng.shuffle(doc_idx)
    return doc_idx


def build_sample_idx(sizes: np.ndarray, doc_idx: np.ndarray, seq_length: int, epochs: int,
                     tokens_per_epoch: int) -> np.ndarray:
    """Where each sample starts, as ``(index into doc_idx, offset)``: what the fork's C++ loop computes.

    Sample ``k`` starts at token ``k * seq_length`` of the documents in ``doc_idx`` order; the token at
    position ``p`` belongs to the document whose tokens span ``p`` (empty documents are passed over).
    """
    num_samples = (epochs * tokens_per_epoch - 1) // seq_length
    starts = np.concatenate(([0], np.cumsum(np.asarray(sizes)[doc_idx], dtype=np.int64)))
    positions = np.arange(num_samples + 1, dtype=np.int64) * seq_length
    which = np.searchsorted(starts, positions, side="right") - 1
    sample_idx = np.empty((num_samples + 1, 2), dtype=np.int32)
    sample_idx[:, 0] = which
    sample_idx[:, 1] = positions - starts[which]
    return sample_idx


def build_shuffle_idx(num_samples: int, total_size: int, rng: np.random.RandomState) -> np.ndarray:
    """``arange(num_samples)`` shuffled, then ``arange(num_samples, total_size)`` shuffled on its own."""
    dtype = np.uint32 if total_size < np.iinfo(np.uint32).max - 1 else np.int64
    first = np.arange(num_samples, dtype=dtype)
    rng.shuffle(first)
    if num_samples == total_size:
        return first
    last = np.arange(num_samples, total_size, dtype=dtype)
    rng.shuffle(last)
    return np.concatenate((first, last))


def check_index_size(plan: EpochPlan, documents: int, seq_length: int, num_samples: int) -> None:
    """Refuse, with the numbers, a sample longer than the data or maps that cannot fit in memory.

    A sample of ``seq_length + 1`` tokens longer than the split repeats the split inside itself (never meant:
    ``--seq-length 1000000000``), and ``num_samples`` far beyond the data makes ``doc_idx`` hold one entry per
    document per epoch: both used to run until the machine ran out of memory.
    """
    if seq_length >= plan.tokens_per_epoch:
        raise GPTIndexError(f"seq_length {seq_length}: a sample of {seq_length + 1} tokens is longer than the"
                            f" split's {plan.tokens_per_epoch} tokens ({documents} documents); lower the sequence"
                            " length or add data")
    samples = (plan.epochs * plan.tokens_per_epoch - 1) // seq_length
    # doc_idx (int32) and the int64 document starts; sample_idx and its int64 positions; shuffle_idx
    needed = 12 * plan.epochs * documents + 32 * (samples + 1)
    check_fits(f"{num_samples} samples of {seq_length + 1} tokens ({plan.epochs} epochs of {documents} documents,"
               f" {plan.tokens_per_epoch} tokens each): the index maps", needed,
               "lower the number of samples or the sequence length")


def build_gpt_index(documents: np.ndarray, sizes: np.ndarray, num_samples: int, seq_length: int,
                    seed: int) -> GPTIndex:
    """The fork's ``_build_index_mappings`` for the documents ``documents`` of a dataset with ``sizes``."""
    documents = np.asarray(documents)
    if len(documents) == 0:
        raise GPTIndexError("the split has no documents")
    plan = plan_epochs(int(np.sum(np.asarray(sizes)[documents], dtype=np.int64)), seq_length, num_samples)
    check_index_size(plan, len(documents), seq_length, num_samples)
    rng = np.random.RandomState(seed=seed)
    doc_idx = build_doc_idx(documents, plan.epochs, rng, plan.separate_last_epoch)
    sample_idx = build_sample_idx(sizes, doc_idx, seq_length, plan.epochs, plan.tokens_per_epoch)
    total = sample_idx.shape[0] - 1
    first = plan.samples_before_last_epoch if plan.separate_last_epoch else total
    return GPTIndex(doc_idx, sample_idx, build_shuffle_idx(first, total, rng), plan)
