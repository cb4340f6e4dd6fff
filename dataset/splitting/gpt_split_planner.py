"""Plan a continued-pretraining run's data: what the fork's ``pretrain_gpt.py --data-path P --split 969,30,1``
will read, before training.

For each of train / valid / test: the document range ``--split`` gives (``dataset.splitting.gpt_index``), its tokens,
the samples one epoch yields (``(tokens - 1) // seq_length``: samples of ``seq_length + 1`` tokens overlap by
one), the samples the fork asks for (train: ``train_iters x global_batch_size``; valid:
``(train_iters // eval_interval + 1) x eval_iters x global_batch_size``; test: ``eval_iters x
global_batch_size``), and the epochs that takes, with the fork's separate-last-epoch rule. It warns when a
split the run asks samples of has no tokens (the fork builds no dataset for it and silently skips that
evaluation) and when the data is repeated many times.

The same counts serve raw-document prefixes in weighted split files (:func:`plan_gpt_range`, used by
``dataset.splitting.split_planner``). Run through ``python -m dataset.splits plan --data-path PREFIX --split 969,30,1``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from dataset.splitting.gpt_index import plan_epochs, split_document_ranges
from dataset.formats.indexed_dataset import IndexedDataset, index_file_path

SPLIT_NAMES = ("train", "valid", "test")
MANY_EPOCHS = 4  # more passes than this over the same tokens is worth a warning


@dataclass(frozen=True)
class GPTRangePlan:
    """One document range of one raw-document dataset."""

    split: str
    documents: tuple[int, int]
    tokens: int
    samples_per_epoch: int
    num_samples: int
    epochs: int | None  # None when nothing is asked of it or it has fewer than two tokens
    separate_last_epoch: bool


@dataclass
class GPTDataPlan:
    prefix: str
    split: str
    seq_length: int
    documents_in_file: int
    ranges: list[GPTRangePlan] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {**{k: v for k, v in asdict(self).items() if k != "ranges"},
                "ranges": [asdict(r) for r in self.ranges]}


def is_raw_document_prefix(prefix: str | Path) -> bool:
    """True when ``PREFIX.idx`` itself exists (a pretraining dataset, not a pair prefix)."""
    return index_file_path(prefix).exists()


def gpt_num_samples(split: str, train_iters: int, global_batch_size: int, eval_interval: int,
                    eval_iters: int) -> int:
    """Samples Megatron's ``build_train_valid_test_data_loaders`` asks of a split (0 when not planned)."""
    if split == "train":
        return train_iters * global_batch_size
    if eval_iters <= 0:
        return 0
    if split == "test":
        return eval_iters * global_batch_size
    return (train_iters // eval_interval + 1) * eval_iters * global_batch_size if eval_interval > 0 else 0


def plan_gpt_range(split: str, sizes: np.ndarray, start: int, end: int, num_samples: int,
                   seq_length: int) -> GPTRangePlan:
    """Tokens, samples per epoch and epochs of documents ``[start, end)``."""
    tokens = int(np.asarray(sizes)[start:end].sum(dtype=np.int64))
    if tokens < 2:
        return GPTRangePlan(split, (start, end), tokens, 0, num_samples, None, False)
    plan = plan_epochs(tokens, seq_length, num_samples)
    epochs = plan.epochs if num_samples > 0 else None
    return GPTRangePlan(split, (start, end), tokens, plan.samples_per_epoch, num_samples, epochs,
                        plan.separate_last_epoch and num_samples > 0)


def plan_gpt_data(prefix: str | Path, split: str, seq_length: int, train_iters: int = 0,
                  global_batch_size: int = 0, eval_interval: int = 0, eval_iters: int = 0) -> GPTDataPlan:
    """The three ranges of ``--data-path prefix --split split`` and what the run asks of each."""
    sizes = IndexedDataset(prefix).sizes
    bounds = split_document_ranges(split, len(sizes))
    plan = GPTDataPlan(str(prefix), split, seq_length, len(sizes))
    for i, name in enumerate(SPLIT_NAMES):
        wanted = gpt_num_samples(name, train_iters, global_batch_size, eval_interval, eval_iters)
        plan.ranges.append(plan_gpt_range(name, sizes, bounds[i], bounds[i + 1], wanted, seq_length))
    plan.warnings.extend(gpt_range_warnings(plan.ranges, str(prefix)))
    return plan


def gpt_range_warnings(ranges: list[GPTRangePlan], prefix: str) -> list[str]:
    found = []
    for r in ranges:
        if r.num_samples > 0 and r.samples_per_epoch == 0:
            found.append(f"EMPTY: {r.split} of {prefix} has documents [{r.documents[0]}, {r.documents[1]}) and"
                         f" {r.tokens} tokens but the run asks for {r.num_samples} samples; give it a larger"
                         " --split share")
        elif r.epochs is not None and r.epochs > MANY_EPOCHS:
            found.append(f"REPEATED: {r.split} of {prefix} is read {r.epochs} times ({r.num_samples} samples of"
                         f" {r.samples_per_epoch} per epoch); more data or fewer iterations?")
    return found


def format_gpt_plan(plan: GPTDataPlan) -> str:
    """The plan as an aligned text table followed by the warnings."""
    columns = ["split", "documents", "tokens", "samples/epoch", "samples", "epochs", "last epoch"]
    rows = [[r.split, f"[{r.documents[0]}, {r.documents[1]})", str(r.tokens), str(r.samples_per_epoch),
             str(r.num_samples), "-" if r.epochs is None else str(r.epochs),
             "separate" if r.separate_last_epoch else "-"] for r in plan.ranges]
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(columns)]
    lines = [f"{plan.prefix}: {plan.documents_in_file} documents, --split {plan.split}, seq_length "
             f"{plan.seq_length} (samples of {plan.seq_length + 1} tokens, overlapping by one)",
             "  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in rows]
    lines += ["", *(f"WARNING: {w}" for w in plan.warnings)] if plan.warnings else []
    return "\n".join(lines)
