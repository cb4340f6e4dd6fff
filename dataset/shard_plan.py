"""Cut the input files of a preprocess run into N shards: contiguous, whole records, near-equal in bytes.

Used by ``dataset.preprocess --num-shards N --shard-index I`` and ``dataset.merge_shards`` (not a command).
The input files, taken in order, are one stream of ``B`` bytes (sizes as stored on disk). Shard ``i`` is the
bytes between boundaries ``b(i)`` and ``b(i+1)``, where ``b(k)`` is the position ``k * B // N`` moved forward
to the next line start: in a plain file, by seeking just before it and reading up to the next newline; a
``.gz`` file cannot be entered in the middle, so a position inside one moves to its end (a gzip file is
always read whole, by one shard). Every task computes the same boundaries from the file sizes alone, so the
shards cover the input exactly once, in order, without any task reading the corpus: a task reads only its
own range plus at most one line at each end. A shard may be empty (more shards than lines, or a big
``.gz``); it then writes an empty partial dataset.

Where shards go: beside the output prefix, ``PREFIX.shards/IIIII-of-NNNNN/part_...`` (one folder per shard,
so each has its own manifest), merged by ``dataset.merge_shards`` into ``PREFIX_...``.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from dataset.jsonl_records import RecordIssue

SEEK_BLOCK = 1 << 20
SHARD_FOLDER_SUFFIX = ".shards"


class ShardPlanError(ValueError):
    """A shard request that cannot be met (bad index or count)."""


@dataclass(frozen=True)
class ShardSpec:
    """Which shard of how many: ``index`` in ``0..count-1``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ShardPlanError(f"--num-shards must be at least 1, got {self.count}")
        if not 0 <= self.index < self.count:
            raise ShardPlanError(f"--shard-index must be in 0..{self.count - 1} for --num-shards {self.count},"
                                 f" got {self.index}")


@dataclass(frozen=True)
class InputPiece:
    """Bytes ``start:end`` of one input file; ``whole`` when that is the entire file (read without a range)."""

    path: str
    start: int
    end: int
    whole: bool

    @property
    def byte_range(self) -> tuple[int, int] | None:
        return None if self.whole else (self.start, self.end)


def shards_folder(prefix: str) -> Path:
    """``PREFIX.shards``: where every shard of ``prefix`` lives."""
    return Path(f"{prefix}{SHARD_FOLDER_SUFFIX}")


def shard_prefix(prefix: str, spec: ShardSpec) -> str:
    """The output prefix of one shard: ``PREFIX.shards/00002-of-00007/part``."""
    return str(shards_folder(prefix) / f"{spec.index:05d}-of-{spec.count:05d}" / "part")


def is_gzip(path: str) -> bool:
    return Path(path).suffix == ".gz"


def input_sizes(paths: list[str]) -> list[int]:
    return [os.stat(p).st_size for p in paths]


def input_stats(paths: list[str]) -> list[dict[str, int | str]]:
    """Each input's path, size (the plan's basis) and modification time, as a shard's manifest records them.

    Shards that saw one input at different times may have read two versions of it (an edit in place keeps
    the size): ``dataset.shard_manifests`` then compares their recorded hashes with the file.
    """
    stats = [os.stat(p) for p in paths]
    return [{"path": p, "bytes": s.st_size, "mtime_ns": s.st_mtime_ns} for p, s in zip(paths, stats)]


def _next_line_start(path: str, offset: int, size: int) -> int:
    """The first line start at or after ``offset`` in a plain file (``size`` when no newline follows)."""
    if offset <= 0:
        return 0
    with open(path, "rb") as f:
        f.seek(offset - 1)  # a newline just before ``offset`` makes ``offset`` itself a line start
        position = offset - 1
        while block := f.read(SEEK_BLOCK):
            newline = block.find(b"\n")
            if newline >= 0:
                return position + newline + 1
            position += len(block)
    return size


def boundary(paths: list[str], sizes: list[int], position: int) -> int:
    """``position`` in the concatenated input moved forward to the start of a record that can be read alone."""
    start = 0
    for path, size in zip(paths, sizes):
        if position < start + size:
            offset = position - start
            if offset == 0:
                return position
            if is_gzip(path):
                return start + size
            return start + _next_line_start(path, offset, size)
        start += size
    return start


def plan_shard(paths: list[str], spec: ShardSpec, sizes: list[int] | None = None) -> list[InputPiece]:
    """The pieces of the input files that shard ``spec`` reads, in order (empty for an empty shard)."""
    sizes = input_sizes(paths) if sizes is None else sizes
    total = sum(sizes)
    if spec.count == 1:
        lo, hi = 0, total
    else:
        lo = boundary(paths, sizes, spec.index * total // spec.count)
        hi = boundary(paths, sizes, (spec.index + 1) * total // spec.count)
    pieces, start = [], 0
    for path, size in zip(paths, sizes):
        a, b = max(lo, start), min(hi, start + size)
        last = spec.index == spec.count - 1
        if a < b or (size == 0 and (lo <= start < hi or (last and start == total))):  # empty: where it falls
            pieces.append(InputPiece(path, a - start, b - start, whole=(a - start == 0 and b - start == size)))
        start += size
    return pieces


class LineNumbers:
    """Line numbers for issues of a shard that starts inside a file, counted only when an issue needs one.

    A piece read from byte ``start > 0`` numbers its lines from 1; the real number needs the newlines before
    ``start``, which are counted (once, at memory speed) the first time an issue from that piece is reported:
    a clean shard never reads the part of the file before its range.
    """

    def __init__(self, pieces: list[InputPiece]) -> None:
        first = pieces[0] if pieces else None
        self._piece = first if first is not None and first.start > 0 else None
        self._lines_before: int | None = None

    def locate(self, issue: RecordIssue) -> RecordIssue:
        """``issue`` with its line number counted from the start of its file."""
        if self._piece is None or issue.path != self._piece.path:
            return issue
        if self._lines_before is None:
            self._lines_before = _count_newlines(self._piece.path, self._piece.start)
        return dataclasses.replace(issue, line=issue.line + self._lines_before)


def _count_newlines(path: str, end: int) -> int:
    count, left = 0, end
    with open(path, "rb") as f:
        while left > 0 and (block := f.read(min(SEEK_BLOCK * 4, left))):
            count += block.count(b"\n")
            left -= len(block)
    return count
