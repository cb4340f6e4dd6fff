"""The packed MTF samples ``finetune_mtf.py`` trains on, built from a split file and the indexed datasets.

``build_packed_dataset(split_file, group, num_samples, seq_length, seed, cache_dir, pad_id)`` returns a
dataset whose item ``i`` is exactly the fork's ``DecoderPackedMTFDataset.__getitem__(i)`` (or, for a
group of several weighted datasets, ``BlendableDataset.__getitem__(i)``)::

    {"decoder_token_ids": int64 [seq_length+1],   # [inputs|targets] pairs back to back, right-padded
     "decoder_segment_ids": int64 [seq_length+1], # 1, 2, ... per pair, 0 = padding
     "decoder_is_inputs": bool [seq_length+1]}

``seq_length`` is the *model's* sequence length; rows hold ``seq_length + 1`` tokens because
finetune_mtf passes ``args.seq_length + 1`` to the dataset (the fixtures: 256 -> rows of 257).
Prefixes in the split file are resolved relative to the split file's folder unless absolute. Index maps
are cached in ``cache_dir`` under the fork's names, keyed by content (:mod:`training.samples.index_cache`).
``legacy_split_offsets=True`` reproduces the fork's bug (a range ``0.95:1`` reads the first 5% of the
documents); the default reads the documents of the range. Over-long pairs are counted in ``report``.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from dataset.splitting.blending import blending_weights, build_blending_index, per_dataset_num_samples
from dataset.formats.indexed_dataset import IndexedDataset
from dataset.splitting.packed_index import PackingError, SkippedPair, build_packed_index, document_offset, pair_lengths
from dataset.splitting.split_files import SplitDataset, SplitFileError, SplitGroup, parse_split_file, resolve_prefix
from training.samples.index_cache import IndexMapFiles, cache_key, load_or_build


@dataclass
class MemberReport:
    """What packing one dataset of a group gave (counts the fork only logs or never says)."""

    prefix: str
    group: str
    documents_in_file: int
    document_range: tuple[int, int]
    documents_used: tuple[int, int]  # differs from document_range under legacy_split_offsets
    num_samples: int
    rows: int
    epochs: int
    skipped_pairs: int  # distinct over-long pairs, as ``splits plan`` counts them
    skipped_visits: int  # their occurrences over all epochs (the fork logs one warning each)
    skipped_documents: list[int]
    batch_idx_file: str
    shuffle_idx_file: str
    rebuilt: bool


@dataclass
class PackingReport:
    """Per-dataset reports plus the blended length (equal to the rows when there is one dataset)."""

    group: str
    row_length: int
    legacy_split_offsets: bool
    members: list[MemberReport] = field(default_factory=list)
    length: int = 0

    @property
    def skipped_pairs(self) -> int:
        """Distinct over-long pairs of the group (not multiplied by the epochs the maps span)."""
        return sum(m.skipped_pairs for m in self.members)

    def to_dict(self) -> dict:
        return {**asdict(self), "skipped_pairs": self.skipped_pairs}

    def describe(self) -> str:
        """Human-readable summary: per dataset the documents read, rows, epochs, skipped pairs, cache use."""
        lines = [f"group {self.group!r}: {self.length} items, rows of {self.row_length} tokens"
                 f"{' (legacy split offsets)' if self.legacy_split_offsets else ''}"]
        for m in self.members:
            used = "" if m.documents_used == m.document_range else f", reads documents {list(m.documents_used)}"
            lines.append(
                f"  {m.prefix}: documents {list(m.document_range)} of {m.documents_in_file}{used};"
                f" {m.num_samples} samples -> {m.rows} rows over {m.epochs} epoch(s);"
                f" {m.skipped_pairs} over-long pair(s) skipped {m.skipped_documents[:10]}"
                f"{f' ({m.skipped_visits} times over the epochs)' if m.skipped_visits > m.skipped_pairs else ''}"
                f"; {'built' if m.rebuilt else 'cached'}: {Path(m.batch_idx_file).name}"
            )
        return "\n".join(lines)


class PackedMTFDataset:
    """One dataset of a group: the fork's ``DecoderPackedMTFDataset`` over its cached index maps."""

    report: PackingReport  # set by build_packed_dataset on the dataset it returns
    skipped: list[SkippedPair]

    def __init__(self, inputs: IndexedDataset, targets: IndexedDataset, batch_idx: np.ndarray,
                 shuffle_idx: np.ndarray, row_length: int, pad_id: int) -> None:
        self.inputs = inputs
        self.targets = targets
        self.batch_idx = batch_idx
        self.shuffle_idx = shuffle_idx
        self.row_length = row_length
        self.pad_id = pad_id

    def __len__(self) -> int:
        return int(self.batch_idx.shape[0])

    @property
    def usable_length(self) -> int:
        """Every row exists (the blended dataset's can fall short)."""
        return len(self)

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"row {i} out of range for {len(self)} packed rows")
        start, end = (int(x) for x in self.batch_idx[i])
        return self.pack([int(d) for d in self.shuffle_idx[start:end]])

    def pack(self, documents: list[int]) -> dict[str, np.ndarray]:
        """The fork's ``pack_samples``: pairs back to back, then pad; segment ids count from 1."""
        tokens = np.full(self.row_length, self.pad_id, dtype=np.int64)
        segments = np.zeros(self.row_length, dtype=np.int64)
        is_inputs = np.zeros(self.row_length, dtype=bool)
        cursor = 0
        for segment, doc in enumerate(documents, start=1):
            source, target = self.inputs[doc], self.targets[doc]
            total = len(source) + len(target)
            if cursor + total > self.row_length:
                raise PackingError(f"document {doc} does not fit in its row; the index maps are stale")
            tokens[cursor:cursor + len(source)] = source
            tokens[cursor + len(source):cursor + total] = target
            segments[cursor:cursor + total] = segment
            is_inputs[cursor:cursor + len(source)] = True
            cursor += total
        return {"decoder_token_ids": tokens, "decoder_segment_ids": segments, "decoder_is_inputs": is_inputs}


class BlendedPackedDataset:
    """The fork's ``BlendableDataset``: item ``i`` is row ``dataset_sample_index[i]`` of ``dataset_index[i]``.

    Its length is, as in the fork, the sum of the members' rows; the last items can ask a member for a
    row it does not have (the fork then fails the same way). ``usable_length`` counts the leading items
    that exist; the 0.5% margin of the per-dataset sample counts keeps it above ``num_samples``.
    """

    report: PackingReport  # set by build_packed_dataset
    skipped: list[SkippedPair]

    def __init__(self, datasets: list[PackedMTFDataset], weights: list[float]) -> None:
        self.datasets = datasets
        size = sum(len(d) for d in datasets)
        self.dataset_index, self.dataset_sample_index = build_blending_index(blending_weights(weights), size)
        lengths = np.array([len(d) for d in datasets], dtype=np.int64)
        missing = np.flatnonzero(self.dataset_sample_index >= lengths[self.dataset_index])
        self.usable_length = int(missing[0]) if len(missing) else size

    def __len__(self) -> int:
        return int(self.dataset_index.shape[0])

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        member = int(self.dataset_index[i])
        row = int(self.dataset_sample_index[i])
        if row >= len(self.datasets[member]):
            raise IndexError(
                f"blended item {i} asks dataset {member} for row {row} but it has {len(self.datasets[member])};"
                f" only the first {self.usable_length} items exist (ask for more num_samples)"
            )
        return self.datasets[member][row]


def select_group(split_file: Path, group: str | None) -> SplitGroup:
    """The named group of ``split_file`` (or its only group when ``group`` is None)."""
    groups = parse_split_file(split_file)
    if group is None:
        if len(groups) != 1:
            names = ", ".join(g.name for g in groups)
            raise SplitFileError(f"{split_file}: {len(groups)} groups ({names}); say which one to build")
        return groups[0]
    for candidate in groups:
        if candidate.name == group:
            return candidate
    raise SplitFileError(f"{split_file}: no group named {group!r} (has {', '.join(g.name for g in groups)})")


def build_member(entry: SplitDataset, prefix: Path, name: str, num_samples: int, row_length: int, seed: int,
                 cache_dir: Path, pad_id: int, legacy_split_offsets: bool
                 ) -> tuple[PackedMTFDataset, MemberReport, list[SkippedPair]]:
    """Build (or load from cache) the index maps of one dataset of a group."""
    inputs = IndexedDataset(f"{prefix}_inputs_document")
    targets = IndexedDataset(f"{prefix}_targets_document")
    lengths = pair_lengths(inputs.sizes, targets.sizes)
    start, end = entry.document_range(len(lengths))
    if end <= start:
        raise PackingError(
            f"{prefix}: range {entry.start}:{entry.end} of {len(lengths)} documents is empty after rounding"
            " (the fork would build no dataset for it); widen the range"
        )
    params = {"doc_range": [start, end], "num_samples": num_samples, "row_length": row_length, "seed": seed,
              "legacy_split_offsets": legacy_split_offsets, "name": name}
    files = IndexMapFiles.for_dataset(cache_dir, prefix, name, num_samples, seed)
    cached = load_or_build(files, cache_key(prefix, params), lambda: build_packed_index(
        lengths, start, end, num_samples, row_length, seed, legacy_split_offsets))
    index = cached.index
    used_start = document_offset(start, legacy_split_offsets)
    report = MemberReport(
        prefix=os.fspath(prefix), group=name, documents_in_file=len(lengths), document_range=(start, end),
        documents_used=(used_start, used_start + end - start), num_samples=num_samples, rows=index.num_rows,
        epochs=index.epochs, skipped_pairs=len(index.skipped_documents), skipped_visits=len(index.skipped),
        skipped_documents=index.skipped_documents,
        batch_idx_file=os.fspath(files.batch_idx), shuffle_idx_file=os.fspath(files.shuffle_idx),
        rebuilt=cached.rebuilt,
    )
    dataset = PackedMTFDataset(inputs, targets, index.batch_idx, index.shuffle_idx, row_length, pad_id)
    return dataset, report, list(index.skipped)


def build_packed_dataset(split_file: Path, group: str | None, num_samples: int, seq_length: int, seed: int,
                         cache_dir: Path, pad_id: int, legacy_split_offsets: bool = False
                         ) -> PackedMTFDataset | BlendedPackedDataset:
    """The dataset the fork builds for ``group`` of ``split_file``; ``seq_length`` is the model's.

    For a blended group ``num_samples`` is the group's total; each member gets ``ceil(n * w * 1.005)``.
    The result has ``report`` (:class:`PackingReport`) and ``skipped`` (every skipped over-long pair).
    """
    split_file = Path(split_file)
    chosen = select_group(split_file, group)
    row_length = seq_length + 1
    counts = (per_dataset_num_samples(num_samples, [d.weight for d in chosen.datasets])
              if len(chosen.datasets) > 1 else [num_samples])
    report = PackingReport(chosen.name, row_length, legacy_split_offsets)
    members, skipped = [], []
    for entry, count in zip(chosen.datasets, counts):
        dataset, member_report, member_skipped = build_member(
            entry, resolve_prefix(entry.prefix, split_file), chosen.name, count, row_length, seed,
            Path(cache_dir), pad_id, legacy_split_offsets)
        members.append(dataset)
        report.members.append(member_report)
        skipped.extend(member_skipped)
    result = members[0] if len(members) == 1 else BlendedPackedDataset(members, [d.weight for d in chosen.datasets])
    report.length = len(result)
    result.report = report
    result.skipped = skipped
    return result
