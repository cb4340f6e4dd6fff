"""Join MMIDIDX datasets end to end into one, streaming, at close to copy speed (used by ``dataset.merge_shards``).

The result is byte for byte what one ``IndexedDatasetWriter`` would write for all the sequences in order:
the ``.bin`` files back to back (copied in the kernel with ``copy_file_range`` where the file system allows,
else in 8 MiB blocks), and an ``.idx`` whose header counts every sequence, whose sizes are the sources' sizes
copied as they are, whose pointers are each source's pointers shifted by the bytes before it, and whose
``doc_idx`` is ``0..N`` (one sequence per document, as the preprocess stage writes it; a source with any
other ``doc_idx`` is refused). Nothing is held per sequence: memory stays flat whatever the size.

Like ``IndexedDatasetWriter``, the files live under hidden temporary names until :meth:`finalize` made them
durable and :meth:`commit_data` / :meth:`commit_index` renamed them, so a caller can rename several
datasets' ``.bin`` files before any ``.idx``.
"""
from __future__ import annotations

import os
from typing import BinaryIO

import numpy as np

from dataset.formats.indexed_dataset import (
    CODE_OF_DTYPE, IndexFormatError, TemporaryDatasetFiles, data_file_path, index_file_path, index_header,
    read_index_header,
)

BLOCK_ENTRIES = 1 << 20  # pointers/doc_idx entries per block (8 MiB)
COPY_BLOCK = 8 << 20


class SourceIndex:
    """One source dataset: its checked ``.idx`` header and its ``.bin`` size."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.idx_path, self.bin_path = index_file_path(prefix), data_file_path(prefix)
        self.header = read_index_header(prefix)
        if self.header.num_docs != self.header.num_sequences + 1:
            raise IndexFormatError(f"{self.idx_path}: {self.header.num_docs} doc_idx entries for"
                                   f" {self.header.num_sequences} sequences; only one sequence per document"
                                   " can be merged")
        self.dtype, self.num_sequences = self.header.dtype, self.header.num_sequences
        self.bin_bytes = self.bin_path.stat().st_size


def copy_range(src: BinaryIO, dst: BinaryIO, offset: int, count: int) -> None:
    """Copy ``count`` bytes of ``src`` from ``offset`` to the current end of ``dst`` (in the kernel if it can)."""
    dst.flush()
    try:
        while count > 0:
            done = os.copy_file_range(src.fileno(), dst.fileno(), count, offset)
            if done == 0:
                raise IndexFormatError(f"{src.name}: shorter than its index says")
            offset, count = offset + done, count - done
        dst.seek(0, os.SEEK_END)
        return
    except OSError:  # another file system, or no copy_file_range: copy in user space
        dst.seek(0, os.SEEK_END)
    src.seek(offset)
    while count > 0:
        block = src.read(min(COPY_BLOCK, count))
        if not block:
            raise IndexFormatError(f"{src.name}: shorter than its index says")
        dst.write(block)
        count -= len(block)


class ConcatenatedDataset(TemporaryDatasetFiles):
    """``PREFIX.{bin,idx}`` made of ``sources`` (dataset prefixes) in order; all of one token dtype."""

    def __init__(self, prefix: str, sources: list[str], dtype: np.dtype) -> None:
        self.sources = [SourceIndex(s) for s in sources]
        self.dtype = np.dtype(dtype)
        for source in self.sources:
            if source.dtype != self.dtype:
                raise IndexFormatError(f"{source.idx_path}: tokens are {source.dtype}, the others {self.dtype}")
        if self.dtype not in CODE_OF_DTYPE:
            raise IndexFormatError(f"unsupported token dtype {self.dtype}")
        super().__init__(prefix)
        self.num_sequences = sum(s.num_sequences for s in self.sources)
        self.num_tokens = sum(s.bin_bytes for s in self.sources) // self.dtype.itemsize

    def finalize(self) -> None:
        """Write both files under their temporary names and make them durable."""
        self.bin_tmp.parent.mkdir(parents=True, exist_ok=True)
        with open(self.bin_tmp, "wb") as out:
            for source in self.sources:
                with open(source.bin_path, "rb") as src:
                    copy_range(src, out, 0, source.bin_bytes)
            out.flush()
            os.fsync(out.fileno())
        with open(self.idx_tmp, "wb") as out:
            self._write_index(out)
            out.flush()
            os.fsync(out.fileno())
        self._finalized = True

    def _write_index(self, out: BinaryIO) -> None:
        n = self.num_sequences
        out.write(index_header(self.dtype, n, n + 1))
        for source in self.sources:  # sizes: copied as they are
            with open(source.idx_path, "rb") as src:
                copy_range(src, out, source.header.sizes_offset, 4 * source.num_sequences)
        shift = 0
        for source in self.sources:  # pointers: shifted past the sources before
            with open(source.idx_path, "rb") as src:
                src.seek(source.header.pointers_offset)
                for start in range(0, source.num_sequences, BLOCK_ENTRIES):
                    count = min(BLOCK_ENTRIES, source.num_sequences - start)
                    pointers = np.frombuffer(src.read(8 * count), dtype="<i8")
                    out.write((pointers + shift).astype("<i8").tobytes())
            shift += source.bin_bytes
        for start in range(0, n + 1, BLOCK_ENTRIES):
            out.write(np.arange(start, min(start + BLOCK_ENTRIES, n + 1), dtype="<i8").tobytes())
