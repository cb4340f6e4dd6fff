"""Tensor-by-tensor comparison of two Hugging Face checkpoints, whatever their shard layout and file format.

The core of ``python -m conversion.verify shards A B [--atol X] [--rtol Y]``. Keys are walked in a stable
order (A's storage order, then keys only B has); one tensor pair is held at a time. A pair with the same
dtype and shape is first compared byte for byte on the memory-mapped files (no unpickling, no copy), which is
what makes this faster than ``torch.load`` + ``torch.equal``. Only pairs whose bytes differ (or whose dtypes
differ) are compared by value, in float64 chunks, giving the max absolute difference, the max relative
difference (relative to B, as in ``torch.allclose(a, b)``) and the number of elements outside
``|a - b| <= atol + rtol * |b|``. NaN equals NaN; -0.0 equals 0.0.

Across dtypes (``--across-dtypes``): a tensor stored in two dtypes (an fp32 export against a bf16 one) is not a
mismatch by itself; the more precise side is rounded to the other's dtype, as the export did, and the values
are compared (so a correct bf16 export of an fp32 model matches exactly, atol 0). Without it a dtype difference
is always a mismatch.

Tied weights: when one side stores ``lm_head.weight`` and the other omits it while its config.json ties the
head to the embeddings (``tie_word_embeddings``, true unless set false, as in transformers), the stored
``lm_head.weight`` is compared with the other side's ``transformer.wte.weight`` and a note says so; that is the
tensor transformers would use. Without a config.json (or with ``tie_word_embeddings: false``) the key is
reported missing.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from tqdm import tqdm

from conversion.hf_checkpoint_reader import HFCheckpointReader

VALUE_CHUNK = 1 << 20  # elements per float64 chunk: about 8 MiB per operand, whatever the tensor size
BYTES_CHUNK = 1 << 23  # elements per raw comparison step: bounds the temporary of np.array_equal


@dataclass(frozen=True)
class TensorDiff:
    """One key that does not match; ``problems`` lists why (missing in A/B, shape, dtype, values)."""

    key: str
    problems: tuple[str, ...]
    shape_a: tuple[int, ...] | None = None
    shape_b: tuple[int, ...] | None = None
    dtype_a: str | None = None
    dtype_b: str | None = None
    max_abs: float | None = None
    max_rel: float | None = None
    n_mismatched: int | None = None
    numel: int | None = None


@dataclass
class ShardComparison:
    """The outcome of comparing checkpoint A with checkpoint B."""

    path_a: str
    path_b: str
    layout_a: str
    layout_b: str
    atol: float
    rtol: float
    across_dtypes: bool = False  # a dtype difference alone is no mismatch; see the module docstring
    n_keys_a: int = 0
    n_keys_b: int = 0
    n_compared: int = 0
    n_byte_identical: int = 0
    n_within_tolerance: int = 0  # bytes differ (or dtypes do) but every value is within atol/rtol
    bytes_compared: int = 0
    seconds: float = 0.0
    diffs: list[TensorDiff] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def match(self) -> bool:
        return not self.diffs

    def as_dict(self) -> dict[str, Any]:
        """The report as plain data (``conversion.verify.write_json`` spells non-finite floats as strings)."""
        return {**asdict(self), "match": self.match}


@dataclass(frozen=True)
class ValueDifference:
    max_abs: float
    max_rel: float
    n_mismatched: int


def bytes_equal(a: np.ndarray, b: np.ndarray) -> bool:
    """Exact equality of two uint8 buffers, chunk by chunk so that the temporary stays small."""
    if a.size != b.size:
        return False
    if a.size % 8 == 0:  # compare 8 bytes per element: same answer, an eighth of the temporaries
        a, b = a.view(np.uint64), b.view(np.uint64)
    for start in range(0, a.size, BYTES_CHUNK):
        if not np.array_equal(a[start:start + BYTES_CHUNK], b[start:start + BYTES_CHUNK]):
            return False
    return True


def value_difference(a: torch.Tensor, b: torch.Tensor, atol: float, rtol: float) -> ValueDifference:
    """Max |a-b|, max |a-b|/|b| and the count outside atol + rtol*|b|, over 1-D tensors of equal length."""
    max_abs, max_rel, n_bad = 0.0, 0.0, 0
    for start in range(0, a.numel(), VALUE_CHUNK):
        x = a[start:start + VALUE_CHUNK].to(torch.float64)
        y = b[start:start + VALUE_CHUNK].to(torch.float64)
        same = (x == y) | (torch.isnan(x) & torch.isnan(y))
        # NaN against a number (or +inf against -inf) is an infinite difference, never "close".
        diff = torch.nan_to_num(torch.where(same, 0.0, (x - y).abs()), nan=math.inf)
        rel = torch.where(diff == 0, 0.0, diff / y.abs())
        bad = (diff > atol + rtol * y.abs()) | torch.isinf(diff)
        if diff.numel():
            max_abs = max(max_abs, diff.max().item())
            max_rel = max(max_rel, torch.nan_to_num(rel, nan=math.inf).max().item())
        n_bad += int(bad.sum().item())
    return ValueDifference(max_abs, max_rel, n_bad)


def _walk_order(a: HFCheckpointReader, b: HFCheckpointReader) -> list[str]:
    """A's keys ordered so both sides read their shards in order, then the keys only B has."""
    keys_a = a.keys()
    position = {k: i for i, k in enumerate(keys_a)}
    ordered = sorted(keys_a, key=lambda k: (a.shard_rank(k), b.shard_rank(k) if k in b else -1, position[k]))
    return ordered + [k for k in b.keys() if k not in a]


def _compare_pair(report: ShardComparison, key: str, a: HFCheckpointReader, key_a: str,
                  b: HFCheckpointReader, key_b: str) -> None:
    info_a, info_b = a.info(key_a), b.info(key_b)
    described = dict(shape_a=info_a.shape, shape_b=info_b.shape, dtype_a=info_a.dtype_name, dtype_b=info_b.dtype_name)
    report.n_compared += 1
    if info_a.shape != info_b.shape:
        problems = ("shape", "dtype") if info_a.dtype != info_b.dtype else ("shape",)
        report.diffs.append(TensorDiff(key, problems, **described))
        return
    if info_a.dtype == info_b.dtype:
        raw_a, raw_b = a.raw_bytes(key_a), b.raw_bytes(key_b)
        report.bytes_compared += raw_a.size
        identical = bytes_equal(raw_a, raw_b)
        del raw_a, raw_b  # the views pin file pages; drop them before anything else is read
        if identical:
            report.n_byte_identical += 1
            return
    tensor_a, tensor_b = a.flat_tensor(key_a), b.flat_tensor(key_b)
    if info_a.dtype != info_b.dtype and report.across_dtypes:
        tensor_a, tensor_b = _rounded_to_coarser(tensor_a, tensor_b)
    values = value_difference(tensor_a, tensor_b, report.atol, report.rtol)
    problems = ("dtype",) if info_a.dtype != info_b.dtype and not report.across_dtypes else ()
    if values.n_mismatched:
        problems += ("values",)
    if not problems:
        report.n_within_tolerance += 1
        return
    report.diffs.append(TensorDiff(key, problems, **described, max_abs=values.max_abs, max_rel=values.max_rel,
                                   n_mismatched=values.n_mismatched, numel=math.prod(info_a.shape)))


def _rounded_to_coarser(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both tensors in the less precise of their two floating dtypes (integers are left as they are)."""
    if not (a.dtype.is_floating_point and b.dtype.is_floating_point):
        return a, b
    coarse = a.dtype if torch.finfo(a.dtype).eps >= torch.finfo(b.dtype).eps else b.dtype
    return a.to(coarse), b.to(coarse)


def compare_checkpoints(path_a: str | Path, path_b: str | Path, atol: float = 0.0, rtol: float = 0.0,
                        progress: bool = False, across_dtypes: bool = False) -> ShardComparison:
    """Compare every tensor of two HF checkpoints (folders or weight files); see the module docstring."""
    started = time.perf_counter()
    with HFCheckpointReader(path_a) as a, HFCheckpointReader(path_b) as b:
        report = ShardComparison(str(path_a), str(path_b), a.layout, b.layout, atol, rtol, across_dtypes,
                                 n_keys_a=len(a.keys()), n_keys_b=len(b.keys()))
        keys: Iterable[str] = _walk_order(a, b)
        for key in tqdm(keys, desc="comparing tensors", unit="tensor", disable=None if progress else True):
            if key in a and key in b:
                _compare_pair(report, key, a, key, b, key)
            elif key in a and b.tied_alias(key):
                report.notes.append(f"{key} is absent in B, whose config.json ties it to {b.tied_alias(key)}: "
                                    f"A's {key} was compared with B's {b.tied_alias(key)}")
                _compare_pair(report, key, a, key, b, b.tied_alias(key))
            elif key in b and a.tied_alias(key):
                report.notes.append(f"{key} is absent in A, whose config.json ties it to {a.tied_alias(key)}: "
                                    f"A's {a.tied_alias(key)} was compared with B's {key}")
                _compare_pair(report, key, a, a.tied_alias(key), b, key)
            elif key in a:
                info = a.info(key)
                report.diffs.append(TensorDiff(key, ("missing in B",), shape_a=info.shape, dtype_a=info.dtype_name))
            else:
                info = b.info(key)
                report.diffs.append(TensorDiff(key, ("missing in A",), shape_b=info.shape, dtype_b=info.dtype_name))
    report.seconds = time.perf_counter() - started
    return report


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3e}"
    if isinstance(value, tuple):
        return "[" + ",".join(map(str, value)) + "]"
    return str(value)


def format_report(report: ShardComparison) -> str:
    """The human-readable table printed by the command line."""
    lines = [f"A: {report.path_a} ({report.layout_a}, {report.n_keys_a} tensors)",
             f"B: {report.path_b} ({report.layout_b}, {report.n_keys_b} tensors)",
             f"tolerance: |a-b| <= {report.atol:g} + {report.rtol:g}*|b|"
             + (" (across dtypes: the more precise side rounded to the other's dtype first)"
                if report.across_dtypes else "")]
    lines += [f"note: {note}" for note in report.notes]
    if report.diffs:
        header = ("key", "problem", "shape A", "shape B", "dtype A", "dtype B", "max abs", "max rel", "mismatched")
        rows = [(d.key, "+".join(d.problems), _fmt(d.shape_a), _fmt(d.shape_b), _fmt(d.dtype_a), _fmt(d.dtype_b),
                 _fmt(d.max_abs), _fmt(d.max_rel),
                 "-" if d.n_mismatched is None else f"{d.n_mismatched}/{d.numel}") for d in report.diffs]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        for row in [header, tuple("-" * w for w in widths), *rows]:
            lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    verdict = "MATCH" if report.match else f"MISMATCH: {len(report.diffs)} key(s) differ"
    lines.append(f"{verdict}; {report.n_compared} tensor pairs compared, {report.n_byte_identical} byte-identical, "
                 f"{report.n_within_tolerance} equal within tolerance, {report.bytes_compared / 2**20:.1f} MiB "
                 f"in {report.seconds:.2f}s")
    return "\n".join(lines)
