"""Plan a fine-tuning run's splits: what each dataset of each split gives once packed, before training.

For every dataset of every group of the train / valid split files: documents in its range, input, target
and total tokens, the packed rows one epoch yields at ``seq_length`` (rows of ``seq_length + 1``, the
fork's greedy packing with the run's seed), the pairs too long for a row (the fork silently skips them),
and how many epochs the fork builds to serve ``train_iters x global_batch_size`` samples (validation:
``(train_iters // eval_interval + 1) x eval_iters x global_batch_size``, as Megatron counts them).

It warns loudly when a validation range overlaps training: really (the ranges intersect), or under the
fork's range bug (the fork reads a range ``a:b`` as the *first* ``b - a`` of the documents, so a
``0.95:1`` validation of the training prefix is training data).

A prefix that is a raw-document dataset (``PREFIX.idx`` itself exists: continued pretraining with
``pretrain_gpt.py --train-weighted-split-paths``) is planned as the fork's GPT dataset reads it
(``dataset.gpt_split_planner``): samples of ``seq_length + 1`` tokens across documents, the real range
(the range bug is the packed MTF dataset's only), no pairs to skip.

Run through ``python -m dataset.splits plan`` (see :mod:`dataset.splits`).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from dataset.blending import per_dataset_num_samples
from dataset.gpt_split_planner import is_raw_document_prefix, plan_gpt_range
from dataset.indexed_dataset import IndexedDataset
from dataset.packed_index import build_packed_index, document_offset, pair_lengths, rows_per_epoch
from dataset.preprocess_outputs import document_prefix
from dataset.split_files import SplitGroup
from dataset.split_overlap import overlap_warnings
from runconfig.value_rules import SEED


@dataclass(frozen=True)
class PlanSettings:
    """The run parameters the plan depends on (``seq_length`` is the model's).

    The same-named keys of the ``training:`` section (``TrainingConfig``): ``dataset.splits`` fills it
    from the run config or from plan flags. Negative counts and a non-positive ``seq_length`` are refused.
    """

    seq_length: int
    seed: int = 1234
    train_iters: int = 0
    global_batch_size: int = 0
    eval_interval: int = 0
    eval_iters: int = 0
    legacy_split_offsets: bool = False

    def __post_init__(self) -> None:
        if self.seq_length <= 0:
            raise ValueError(f"seq_length must be positive, got {self.seq_length}")
        for name in ("train_iters", "global_batch_size", "eval_interval", "eval_iters"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        if SEED.problem(self.seed):  # the packing's RandomState would stop half-way
            raise ValueError(f"seed {SEED.problem(self.seed)}")

    @property
    def row_length(self) -> int:
        return self.seq_length + 1

    def num_samples(self, role: str) -> int:
        """Samples the fork asks of a ``role`` group (0 when the settings do not say)."""
        if role == "train":
            return self.train_iters * self.global_batch_size
        if self.eval_interval > 0 and self.eval_iters > 0:
            return (self.train_iters // self.eval_interval + 1) * self.eval_iters * self.global_batch_size
        return 0


@dataclass
class DatasetPlan:
    """One dataset of one group of one split."""

    split: str
    group: str
    prefix: str
    weight: float
    range: str
    documents_in_file: int
    document_range: tuple[int, int]
    documents_read: tuple[int, int]  # what is actually read: the range, or [0, n) under the fork's bug
    documents: int
    input_tokens: int
    target_tokens: int
    tokens: int
    rows_per_epoch: int
    overlong_pairs: int
    num_samples: int
    epochs_needed: int | None
    rows_built: int | None
    kind: str = "pairs"  # or "documents": a raw-document (pretraining) dataset, rows are GPT samples


@dataclass
class SplitPlan:
    """The whole plan: settings, one entry per dataset, and the warnings to shout about."""

    settings: PlanSettings
    datasets: list[DatasetPlan] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"settings": asdict(self.settings), "row_length": self.settings.row_length,
                "datasets": [asdict(d) for d in self.datasets], "warnings": list(self.warnings)}


def plan_dataset(split: str, group: SplitGroup, index: int, prefix: Path, num_samples: int,
                 settings: PlanSettings) -> DatasetPlan:
    """Count, pack one epoch, and (when ``num_samples`` > 0) build the fork's maps to count epochs."""
    entry = group.datasets[index]
    if is_raw_document_prefix(prefix):
        return _plan_documents(split, group, index, prefix, num_samples, settings)
    inputs = IndexedDataset(document_prefix(str(prefix), "inputs"))
    targets = IndexedDataset(document_prefix(str(prefix), "targets"))
    lengths = pair_lengths(inputs.sizes, targets.sizes)
    start, end = entry.document_range(len(lengths))
    offset = document_offset(start, settings.legacy_split_offsets)
    count = max(end - start, 0)
    read = slice(offset, offset + count)
    input_tokens = int(inputs.sizes[read].sum(dtype=np.int64))
    target_tokens = int(targets.sizes[read].sum(dtype=np.int64))
    overlong = int((lengths[read] > settings.row_length).sum())
    rows = epochs = built = None
    if count > 0 and overlong < count:
        rows, _ = rows_per_epoch(lengths, start, end, settings.row_length, settings.seed,
                                 settings.legacy_split_offsets)
        if num_samples > 0:
            packed = build_packed_index(lengths, start, end, num_samples, settings.row_length, settings.seed,
                                        settings.legacy_split_offsets)
            epochs, built = packed.epochs, packed.num_rows
    return DatasetPlan(
        split=split, group=group.name, prefix=str(prefix), weight=entry.weight,
        range=entry.entry().split()[1], documents_in_file=len(lengths), document_range=(start, end),
        documents_read=(offset, offset + count), documents=count, input_tokens=input_tokens,
        target_tokens=target_tokens, tokens=input_tokens + target_tokens, rows_per_epoch=rows or 0,
        overlong_pairs=overlong, num_samples=num_samples, epochs_needed=epochs, rows_built=built,
    )


def _plan_documents(split: str, group: SplitGroup, index: int, prefix: Path, num_samples: int,
                    settings: PlanSettings) -> DatasetPlan:
    entry = group.datasets[index]
    sizes = IndexedDataset(prefix).sizes
    start, end = entry.document_range(len(sizes))
    r = plan_gpt_range(split, sizes, start, end, num_samples, settings.seq_length)
    return DatasetPlan(
        split=split, group=group.name, prefix=str(prefix), weight=entry.weight, range=entry.entry().split()[1],
        documents_in_file=len(sizes), document_range=(start, end), documents_read=(start, end),
        documents=max(end - start, 0), input_tokens=r.tokens, target_tokens=0, tokens=r.tokens,
        rows_per_epoch=r.samples_per_epoch, overlong_pairs=0, num_samples=num_samples, epochs_needed=r.epochs,
        rows_built=None, kind="documents",
    )


def plan_splits(splits: dict[str, list[tuple[SplitGroup, list[Path]]]], settings: PlanSettings) -> SplitPlan:
    """Plan every group; ``splits`` maps a role (train/valid/test) to its groups and resolved prefixes."""
    plan = SplitPlan(settings)
    for role, groups in splits.items():
        total = settings.num_samples(role)
        for group, prefixes in groups:
            counts = (per_dataset_num_samples(total, [d.weight for d in group.datasets])
                      if len(group.datasets) > 1 else [total])
            for i, prefix in enumerate(prefixes):
                plan.datasets.append(plan_dataset(role, group, i, prefix, counts[i], settings))
    plan.warnings.extend(_warnings(plan))
    return plan


def _warnings(plan: SplitPlan) -> list[str]:
    found = []
    for d in plan.datasets:
        if d.documents == 0:
            found.append(f"EMPTY: {d.split}/{d.group} {d.prefix} range {d.range} of {d.documents_in_file}"
                         " documents rounds to no document; the fork builds no dataset for it")
        elif d.overlong_pairs == d.documents:
            found.append(f"UNUSABLE: every pair of {d.split}/{d.group} {d.prefix} is longer than"
                         f" {plan.settings.row_length} tokens; the fork would loop forever")
        elif d.overlong_pairs:
            use = "trained" if d.split == "train" else "evaluated"  # a valid/test pair is scored, not trained on
            found.append(f"SKIPPED: {d.overlong_pairs} pair(s) of {d.split}/{d.group} {d.prefix} are longer than"
                         f" a row of {plan.settings.row_length} tokens and are never {use} on")
    train = [d for d in plan.datasets if d.split == "train"]
    for v in (d for d in plan.datasets if d.split != "train"):
        for t in (d for d in train if d.prefix == v.prefix):
            found.extend(overlap_warnings(v, t))  # the local engine says the same (dataset.split_overlap)
    return found


def format_plan(plan: SplitPlan) -> str:
    """The plan as an aligned text table followed by the warnings."""
    s = plan.settings
    head = (f"seq_length {s.seq_length} (rows of {s.row_length} tokens), seed {s.seed}, train samples"
            f" {s.num_samples('train')} ({s.train_iters} iters x {s.global_batch_size}),"
            f" valid samples {s.num_samples('valid')}"
            f"{', LEGACY split offsets' if s.legacy_split_offsets else ''}")
    columns = ["split", "group", "prefix", "range", "docs", "tokens", "rows/epoch", "too long", "samples",
               "epochs"]
    rows = [[d.split, d.group, Path(d.prefix).name, d.range, str(d.documents), str(d.tokens),
             str(d.rows_per_epoch), str(d.overlong_pairs), str(d.num_samples),
             "-" if d.epochs_needed is None else str(d.epochs_needed)] for d in plan.datasets]
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(columns)]
    lines = [head]
    if s.num_samples("valid"):
        lines.append(f"valid samples are counted the fork's way: (train_iters // eval_interval + 1) x eval_iters x"
                     f" global_batch_size = ({s.train_iters} // {s.eval_interval} + 1) x {s.eval_iters} x"
                     f" {s.global_batch_size}, as it walks on through the valid set; the local engine reads only the"
                     f" first eval_iters x global_batch_size = {s.eval_iters * s.global_batch_size} at every evaluation")
    lines.append("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in rows]
    for d in plan.datasets:
        if d.epochs_needed and d.rows_per_epoch and d.num_samples:
            ratio = d.num_samples / d.rows_per_epoch
            if ratio > 1:
                lines.append(f"note: {d.split}/{d.group} {Path(d.prefix).name} is seen about"
                             f" {ratio:.2f} times ({math.ceil(ratio)} epochs of packed rows)")
    lines += ["", *(f"WARNING: {w}" for w in plan.warnings)] if plan.warnings else []
    return "\n".join(lines)
