"""Where a merged tensor's bytes live in the shard files, and how to assemble them without loading shards.

A Megatron ``.pt`` (torch zip format) stores every tensor's storage uncompressed; loading the file with
``map_location="meta"`` gives each storage's byte offset (``_checkpoint_offset``) without reading data.
A ``Piece`` is one rank's contiguous tensor in one file; a ``Segment`` joins pieces along dim 0 (rows back
to back: column-parallel weights, the vocab-split embeddings, replicated tensors) or dim 1 (row-parallel
weights: each output row interleaves the ranks' rows); a ``TensorSource`` stacks segments along dim 0
(``c_attn = cat(query, key_value)``). Assembling a source either copies file ranges straight into the
output file (``os.copy_file_range``, in the kernel, when no dtype change is asked; row-parallel weights one row at
a time) or reads them into one preallocated tensor, so memory holds at most one tensor, never a shard.

Library module, no command line.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch

_CHUNK = 64 << 20  # bytes per read when comparing replicated copies
_IOV_MAX = 1024  # Linux's limit on buffers per preadv call


@dataclass(frozen=True)
class Piece:
    path: Path
    offset: int
    shape: tuple[int, ...]
    dtype: torch.dtype

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    @classmethod
    def of_meta_tensor(cls, path: Path, name: str, tensor: torch.Tensor) -> "Piece":
        storage = tensor.untyped_storage()
        offset = getattr(storage, "_checkpoint_offset", None)
        if offset is None or not tensor.is_contiguous():
            raise ValueError(f"{path}: {name} is not a contiguous tensor of a zip-format checkpoint;"
                             " re-save the checkpoint with torch >= 1.6")
        return cls(path, int(offset) + tensor.storage_offset() * tensor.element_size(), tuple(tensor.shape),
                   tensor.dtype)


@dataclass(frozen=True)
class Segment:
    pieces: tuple[Piece, ...]
    dim: int  # 0: pieces back to back; 1: pieces side by side (row-parallel weights)

    @property
    def shape(self) -> tuple[int, ...]:
        first = self.pieces[0].shape
        if self.dim == 0:
            return (sum(p.shape[0] for p in self.pieces),) + first[1:]
        return (first[0], sum(p.shape[1] for p in self.pieces))


@dataclass(frozen=True)
class TensorSource:
    segments: tuple[Segment, ...]  # stacked along dim 0

    @property
    def shape(self) -> tuple[int, ...]:
        shapes = [s.shape for s in self.segments]
        return (sum(s[0] for s in shapes),) + shapes[0][1:]

    @property
    def dtype(self) -> torch.dtype:
        return self.segments[0].pieces[0].dtype


class OpenFiles:
    """Read-only descriptors of the shard files, opened once and closed together."""

    def __init__(self) -> None:
        self._fds: dict[Path, int] = {}

    def fd(self, path: Path) -> int:
        if path not in self._fds:
            self._fds[path] = os.open(path, os.O_RDONLY)
        return self._fds[path]

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def __enter__(self) -> "OpenFiles":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _pread_into(fd: int, buffer: memoryview, offset: int, where: Path) -> None:
    done = 0
    while done < len(buffer):
        count = os.preadv(fd, [buffer[done:]], offset + done)
        if count == 0:
            raise ValueError(f"{where}: file ends before byte {offset + len(buffer)}; the shard is truncated")
        done += count


def _bytes_of(tensor: torch.Tensor) -> memoryview:
    return memoryview(tensor.view(torch.uint8).reshape(-1).numpy())


def read_piece(files: OpenFiles, piece: Piece, out: memoryview) -> None:
    _pread_into(files.fd(piece.path), out, piece.offset, piece.path)


def materialize(files: OpenFiles, source: TensorSource) -> torch.Tensor:
    """The full tensor, read straight into one new buffer (dim-1 segments go through one piece buffer)."""
    out = torch.empty(source.shape, dtype=source.dtype)
    raw = _bytes_of(out)
    row_start = 0
    for segment in source.segments:
        rows = segment.shape[0]
        row_bytes = segment_row_bytes(segment)
        block = raw[row_start * row_bytes:(row_start + rows) * row_bytes]
        _read_segment(files, segment, block)
        row_start += rows
    return out


def segment_row_bytes(segment: Segment) -> int:
    shape = segment.shape
    return math.prod(shape[1:]) * segment.pieces[0].dtype.itemsize


def _read_segment(files: OpenFiles, segment: Segment, block: memoryview) -> None:
    if segment.dim == 0:
        start = 0
        for piece in segment.pieces:
            read_piece(files, piece, block[start:start + piece.nbytes])
            start += piece.nbytes
        return
    rows = segment.shape[0]
    row_bytes = len(block) // rows
    column = 0
    for piece in segment.pieces:
        width = piece.nbytes // rows
        fd = files.fd(piece.path)
        for first in range(0, rows, _IOV_MAX):  # scatter each file row straight to its place in the block
            last = min(rows, first + _IOV_MAX)
            targets = [block[r * row_bytes + column:r * row_bytes + column + width] for r in range(first, last)]
            expected = width * (last - first)
            if os.preadv(fd, targets, piece.offset + first * width) != expected:  # short read: go slowly
                for r, target in zip(range(first, last), targets):
                    _pread_into(fd, target, piece.offset + r * width, piece.path)
        column += width


def copy_source(files: OpenFiles, source: TensorSource, out_fd: int) -> int:
    """Append ``source``'s bytes (same dtype) to ``out_fd``; dim-0 pieces are copied by the kernel."""
    written = 0
    for segment in source.segments:
        if segment.dim == 0:
            for piece in segment.pieces:
                _copy_range(files.fd(piece.path), piece.offset, piece.nbytes, out_fd, piece.path)
                written += piece.nbytes
        else:  # each output row is the ranks' rows side by side: one kernel copy per (row, rank)
            rows = segment.shape[0]
            plan = [(files.fd(p.path), p.offset, p.nbytes // rows, p.path) for p in segment.pieces]  # hoisted:
            for row in range(rows):  # this loop runs ~10^5 times per model, keep it lean
                for fd, offset, width, path in plan:
                    _copy_range(fd, offset + row * width, width, out_fd, path)
            written += segment_row_bytes(segment) * rows
    return written


def _copy_range(src_fd: int, offset: int, count: int, out_fd: int, where: Path) -> None:
    done = 0
    while done < count:
        try:
            moved = os.copy_file_range(src_fd, out_fd, count - done, offset + done)
        except OSError:  # e.g. EXDEV on old kernels: fall back to a read and a write
            buffer = bytearray(min(count - done, _CHUNK))
            _pread_into(src_fd, memoryview(buffer), offset + done, where)
            write_all(out_fd, memoryview(buffer))
            moved = len(buffer)
        if moved == 0:
            raise ValueError(f"{where}: file ends before byte {offset + count}; the shard is truncated")
        done += moved


def write_all(fd: int, data: memoryview) -> None:
    done = 0
    while done < len(data):
        done += os.write(fd, data[done:])


def same_bytes(files: OpenFiles, a: Piece, b: Piece) -> bool:
    """Whether two pieces hold identical bytes, compared a chunk at a time."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    for start in range(0, a.nbytes, _CHUNK):
        size = min(_CHUNK, a.nbytes - start)
        left, right = bytearray(size), bytearray(size)
        _pread_into(files.fd(a.path), memoryview(left), a.offset + start, a.path)
        _pread_into(files.fd(b.path), memoryview(right), b.offset + start, b.path)
        if left != right:
            return False
    return True


def first_rows(source: TensorSource, rows: int) -> TensorSource:
    """The first ``rows`` rows of a source of dim-0 segments (e.g. the real vocab of a padded embedding).

    Rows of a dim-0 piece are contiguous in its file, so a shorter piece keeps its offset; pieces past the
    cut are dropped without being read.
    """
    if not 0 < rows <= source.shape[0]:
        raise ValueError(f"cannot take {rows} rows of a tensor with {source.shape[0]}")
    kept: list[Segment] = []
    left = rows
    for segment in source.segments:
        if segment.dim != 0:
            raise ValueError("first_rows needs segments joined along dim 0")
        pieces: list[Piece] = []
        for piece in segment.pieces:
            if left == 0:
                break
            take = min(left, piece.shape[0])
            pieces.append(Piece(piece.path, piece.offset, (take,) + piece.shape[1:], piece.dtype))
            left -= take
        if pieces:
            kept.append(Segment(tuple(pieces), 0))
    return TensorSource(tuple(kept))
