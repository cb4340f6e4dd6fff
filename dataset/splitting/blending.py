"""Megatron's greedy blending of several weighted datasets, and the fork's per-dataset sample counts.

* :func:`per_dataset_num_samples` is ``get_datasets_weights_and_num_samples``: weights normalised by
  their sum, then ``ceil(n * w * 1.005)`` samples per dataset (the 0.5% margin), e.g. 120 samples with
  weights 0.7/0.3 give 85 and 37.
* :func:`build_blending_index` is ``helpers.build_blending_indices`` (C++ in the fork): for sample ``k``
  pick the dataset with the largest error ``w_i * max(k, 1) - used_i`` (first one on ties), record how
  many samples it already gave, and count one more. Outputs ``dataset_index`` uint8 and
  ``dataset_sample_index`` int64 as ``BlendableDataset`` stores them; its size is the sum of the member
  datasets' lengths and its weights are normalised once more with numpy (float64), as the fork does.

The loop is plain Python on Python floats (IEEE doubles, same operations and order as the C++), so the
choice on near-ties is identical; it runs about a million samples per second for two datasets.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

MAX_DATASETS = 254  # BlendableDataset asserts num_datasets < 255 (dataset_index is uint8)


def normalize_weights(weights: Sequence[float]) -> list[float]:
    """``w / sum(w)`` in Python floats, summed left to right (``get_datasets_weights_and_num_samples``)."""
    values = [float(w) for w in weights]
    total = 0.0
    for w in values:
        total += w
    if not total > 0.0:
        raise ValueError(f"blending weights must sum to a positive number, got {values}")
    return [w / total for w in values]


def per_dataset_num_samples(num_samples: int, weights: Sequence[float]) -> list[int]:
    """Samples asked of each member dataset for ``num_samples`` blended ones: ``ceil(n * w * 1.005)``."""
    return [int(math.ceil(num_samples * w * 1.005)) for w in normalize_weights(weights)]


def blending_weights(weights: Sequence[float]) -> np.ndarray:
    """The float64 weights ``BlendableDataset`` hands to the C++ helper (normalised twice, as the fork)."""
    array = np.array(normalize_weights(weights), dtype=np.float64)
    array /= np.sum(array)
    return array


def build_blending_index(weights: Sequence[float], size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(dataset_index uint8 [size], dataset_sample_index int64 [size])`` for already-final ``weights``."""
    num_datasets = len(weights)
    if not 0 < num_datasets <= MAX_DATASETS:
        raise ValueError(f"between 1 and {MAX_DATASETS} datasets can be blended, got {num_datasets}")
    w = [float(x) for x in weights]
    counts = [0] * num_datasets
    choice = [0] * size
    sample = [0] * size
    others = range(1, num_datasets)
    for k in range(size):
        position = float(k) if k > 1 else 1.0  # std::max(double(k), 1.0)
        best = 0
        best_error = w[0] * position - counts[0]
        for i in others:
            error = w[i] * position - counts[i]
            if error > best_error:
                best_error = error
                best = i
        choice[k] = best
        sample[k] = counts[best]
        counts[best] += 1
    return np.array(choice, dtype=np.uint8), np.array(sample, dtype=np.int64)
