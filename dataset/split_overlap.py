"""Does validation read training documents? The one warning ``dataset.splits plan`` and the local engine print.

A validation range of a training prefix that intersects the training range is not held out; and the fork's
packed dataset reads a range ``a:b`` as the *first* ``b - a`` documents, so even disjoint ranges of one
prefix overlap on the cluster. ``dataset.split_planner`` warns with :func:`overlap_warnings` for every dataset
it plans; the local engine calls :func:`split_files_overlap` on the run's split files before it trains::

    for line in split_files_overlap("train_data_paths.txt", "valid_data_paths.txt"):
        print(f"WARNING: {line}")

Library module, no command line.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from dataset.gpt_split_planner import is_raw_document_prefix
from dataset.indexed_dataset import IndexedDataset
from dataset.preprocess_outputs import document_prefix
from dataset.split_files import parse_split_file, resolve_prefix


class RangeRead(Protocol):
    """What a split reads of one dataset (``dataset.split_planner.DatasetPlan`` is one)."""

    split: str
    group: str
    prefix: str
    range: str  # as the split file writes it, e.g. 0.95:1
    document_range: tuple[int, int]
    kind: str  # "pairs" (packed MTF) or "documents" (GPT samples)


@dataclass(frozen=True)
class SplitRange:
    split: str
    group: str
    prefix: str
    range: str
    document_range: tuple[int, int]
    kind: str


def overlap_warnings(valid: RangeRead, train: RangeRead) -> list[str]:
    """The warnings for a validation range and a training range of the same prefix (none when held out)."""
    warnings = []
    (vs, ve), (ts, te) = valid.document_range, train.document_range
    if max(vs, ts) < min(ve, te):
        warnings.append(
            f"OVERLAP: {valid.split}/{valid.group} documents [{vs}, {ve}) of {valid.prefix} intersect the"
            f" training documents [{ts}, {te}); validation is not held out. Give disjoint ranges."
        )
    # Under the fork's bug both ranges are read from document 0, so two non-empty ranges always intersect
    # there, unless both really start at 0 (then the real ranges were checked above).
    if min(ve - vs, te - ts) > 0 and not (vs == 0 and ts == 0) and valid.kind == "pairs":
        warnings.append(
            "!!! FORK RANGE BUG: "
            f"{valid.split}/{valid.group} range {valid.range} of {valid.prefix} means documents [{vs}, {ve}),"
            f" but the fork's finetune_mtf reads documents [0, {ve - vs}) instead, which are training"
            f" documents [{ts}, {te}) too: its validation loss is measured on training data. Hold the"
            " validation documents out in their own prefix (dataset.preprocess valid_fraction) and use"
            " range 0:1 for both, or accept it knowingly (the local engine reads the real range"
            " unless --legacy-split-offsets)."
        )
    return warnings


def split_file_ranges(split_file: str | Path, role: str) -> list[SplitRange]:
    """What each dataset of each group of ``split_file`` reads (document counts from the index files)."""
    ranges = []
    for group in parse_split_file(split_file, role):
        for entry in group.datasets:
            prefix = resolve_prefix(entry.prefix, split_file)
            raw = is_raw_document_prefix(prefix)
            documents = len(IndexedDataset(str(prefix) if raw else document_prefix(str(prefix), "inputs")).sizes)
            ranges.append(SplitRange(role, group.name, str(prefix), entry.entry().split()[1],
                                     entry.document_range(documents), "documents" if raw else "pairs"))
    return ranges


def split_files_overlap(train_split_file: str | Path, valid_split_file: str | Path) -> list[str]:
    """Every overlap warning between the validation and the training split files (as ``splits plan`` says them)."""
    if not train_split_file or not valid_split_file:
        return []
    train = split_file_ranges(train_split_file, "train")
    return [line for valid in split_file_ranges(valid_split_file, "valid")
            for t in train if t.prefix == valid.prefix for line in overlap_warnings(valid, t)]
