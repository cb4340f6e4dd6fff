"""Megatron's MMIDIDX indexed dataset (``PREFIX.bin`` + ``PREFIX.idx``): the one module that knows the bytes.

Layout of ``.idx`` (little-endian), see DESIGN.md 2.1::

    0   9 bytes  magic b"MMIDIDX\\x00\\x00"
    9   uint64   version = 1
    17  uint8    dtype code (8 = uint16 when len(vocab) < 65500, else 4 = int32)
    18  uint64   N, number of sequences
    26  uint64   number of doc_idx entries (documents + 1)
    34  int32[N] sizes (tokens per sequence)
        int64[N] pointers (byte offset of each sequence in .bin)
        int64[D+1] doc_idx (first sequence of each document: 0..N)

``.bin`` is every sequence's tokens back to back. One jsonl record = one document = one sequence.

Write with :class:`IndexedDatasetWriter` (streaming; outputs appear under their final names only when
:meth:`~IndexedDatasetWriter.finalize` renames them), read with :class:`IndexedDataset` (memory-mapped).
"""
from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable

import numpy as np

from guardrails.output_paths import remove_stale_leftovers, temporary_name

MAGIC = b"MMIDIDX\x00\x00"
VERSION = 1
HEADER_SIZE = 34
DTYPE_CODES: dict[int, type] = {
    1: np.uint8, 2: np.int8, 3: np.int16, 4: np.int32, 5: np.int64, 6: np.float64, 7: np.float32, 8: np.uint16,
}
CODE_OF_DTYPE = {np.dtype(v): k for k, v in DTYPE_CODES.items()}
UINT16_VOCAB_LIMIT = 65500  # the fork's rule: uint16 only when len(vocab) < 65500


class IndexFormatError(ValueError):
    """A ``.idx``/``.bin`` pair that is not a complete, consistent MMIDIDX dataset."""


def token_dtype(vocab_size: int) -> np.dtype:
    """The dtype the fork picks for a vocabulary of ``vocab_size`` tokens (``len(tokenizer)``)."""
    return np.dtype(np.uint16 if vocab_size < UINT16_VOCAB_LIMIT else np.int32)


def data_file_path(prefix: str | os.PathLike) -> Path:
    return Path(f"{os.fspath(prefix)}.bin")


def index_file_path(prefix: str | os.PathLike) -> Path:
    return Path(f"{os.fspath(prefix)}.idx")


def encode_index(dtype: np.dtype, sizes: np.ndarray, doc_idx: np.ndarray | None = None) -> bytes:
    """The exact bytes of an ``.idx`` file for sequences of ``sizes`` tokens of ``dtype``."""
    buffer = io.BytesIO()
    write_index(buffer, dtype, sizes, doc_idx)
    return buffer.getvalue()


def index_header(dtype: np.dtype, num_sequences: int, num_docs: int) -> bytes:
    """The first ``HEADER_SIZE`` bytes of an ``.idx``: magic, version, dtype code and the two counts."""
    return (MAGIC + struct.pack("<Q", VERSION) + struct.pack("<B", CODE_OF_DTYPE[np.dtype(dtype)])
            + struct.pack("<QQ", num_sequences, num_docs))


def write_index(f: BinaryIO, dtype: np.dtype, sizes: np.ndarray, doc_idx: np.ndarray | None = None,
                block: int = 1 << 20) -> None:
    """Write an ``.idx`` to ``f`` a block of sequences at a time: no full-size temporaries for big datasets."""
    dtype = np.dtype(dtype)
    sizes = np.asarray(sizes, dtype=np.int32)
    n = len(sizes)
    f.write(index_header(dtype, n, n + 1 if doc_idx is None else len(doc_idx)))
    for i in range(0, n, block):
        f.write(sizes[i:i + block].astype("<i4").tobytes())
    offset = 0
    for i in range(0, n, block):
        nbytes = sizes[i:i + block].astype(np.int64) * dtype.itemsize
        ends = np.cumsum(nbytes)
        f.write((ends - nbytes + offset).astype("<i8").tobytes())  # each sequence starts where the last ended
        offset += int(ends[-1])
    if doc_idx is not None:
        f.write(np.asarray(doc_idx, dtype="<i8").tobytes())
    else:
        for i in range(0, n + 1, block):
            f.write(np.arange(i, min(i + block, n + 1), dtype="<i8").tobytes())


@dataclass(frozen=True)
class IndexHeader:
    """What an ``.idx`` header says, and where its three sections start."""

    dtype: np.dtype
    num_sequences: int
    num_docs: int

    @property
    def sizes_offset(self) -> int:
        return HEADER_SIZE

    @property
    def pointers_offset(self) -> int:
        return HEADER_SIZE + 4 * self.num_sequences

    @property
    def doc_idx_offset(self) -> int:
        return HEADER_SIZE + 12 * self.num_sequences

    @property
    def file_size(self) -> int:
        return HEADER_SIZE + 12 * self.num_sequences + 8 * self.num_docs


def parse_index_header(header: bytes, file_size: int, idx_path: str | os.PathLike) -> IndexHeader:
    """Check the first ``HEADER_SIZE`` bytes of an ``.idx`` of ``file_size`` bytes; errors name ``idx_path``."""
    if len(header) < HEADER_SIZE or header[:9] != MAGIC:
        raise IndexFormatError(f"{idx_path}: not a Megatron MMIDIDX index (bad magic)")
    version, = struct.unpack("<Q", header[9:17])
    if version != VERSION:
        raise IndexFormatError(f"{idx_path}: index version {version}, expected {VERSION}")
    if header[17] not in DTYPE_CODES:
        raise IndexFormatError(f"{idx_path}: unknown dtype code {header[17]}")
    n, d = struct.unpack("<QQ", header[18:34])
    parsed = IndexHeader(np.dtype(DTYPE_CODES[header[17]]), n, d)
    if file_size != parsed.file_size:
        raise IndexFormatError(f"{idx_path}: {file_size} bytes, expected {parsed.file_size} for {n} sequences")
    return parsed


def read_index_header(prefix: str | os.PathLike) -> IndexHeader:
    """The checked header of ``PREFIX.idx``, read without mapping the file."""
    idx_path = index_file_path(prefix)
    with open(idx_path, "rb") as f:
        return parse_index_header(f.read(HEADER_SIZE), os.fstat(f.fileno()).st_size, idx_path)


class TemporaryDatasetFiles:
    """``PREFIX.{bin,idx}`` written under hidden temporary names (``guardrails.output_paths.temporary_name``), then
    renamed into place: ``.bin`` first, ``.idx`` last.

    The shared end of :class:`IndexedDatasetWriter` and ``dataset.formats.indexed_concat.ConcatenatedDataset``: a
    subclass writes both temporaries in ``finalize`` (durably) and sets ``_finalized``.
    """

    def __init__(self, prefix: str | os.PathLike) -> None:
        self.prefix = os.fspath(prefix)
        self.bin_path, self.idx_path = data_file_path(prefix), index_file_path(prefix)
        self.bin_tmp, self.idx_tmp = temporary_name(self.bin_path), temporary_name(self.idx_path)
        self._finalized = False

    def commit(self) -> None:
        """Rename the finalized temporaries into place: ``.bin`` first, ``.idx`` last."""
        self.commit_data()
        self.commit_index()

    def commit_data(self) -> None:
        """Rename the ``.bin`` into place (a caller with several datasets renames every ``.bin`` first)."""
        if not self._finalized:
            raise RuntimeError("commit() before finalize()")
        os.replace(self.bin_tmp, self.bin_path)

    def commit_index(self) -> None:
        """Rename the ``.idx`` into place: from here on a reader accepts the dataset."""
        if not self._finalized:
            raise RuntimeError("commit() before finalize()")
        os.replace(self.idx_tmp, self.idx_path)

    def abort(self) -> None:
        """Remove the temporaries (on error or interruption)."""
        for p in (self.bin_tmp, self.idx_tmp):
            p.unlink(missing_ok=True)


class IndexedDatasetWriter(TemporaryDatasetFiles):
    """Stream sequences into ``PREFIX.bin``; write ``PREFIX.idx`` and rename both into place at the end.

    Until :meth:`finalize` (or :meth:`commit`) the files live under temporary names
    (``.PREFIX.bin.codeft.tmp-PID-HEX``), so a killed run leaves nothing a Megatron reader would accept. ``finalize``
    flushes and fsyncs both temporaries; ``commit`` renames them. Splitting the two lets a caller that
    writes several datasets make all of them durable before renaming any.
    """

    def __init__(self, prefix: str | os.PathLike, dtype: np.dtype) -> None:
        self.dtype = np.dtype(dtype)
        if self.dtype not in CODE_OF_DTYPE:
            raise ValueError(f"unsupported token dtype {self.dtype}")
        super().__init__(prefix)
        self.bin_tmp.parent.mkdir(parents=True, exist_ok=True)
        self._bin = open(self.bin_tmp, "wb")
        self._sizes: list[np.ndarray] = []
        self._pending: list[int] = []
        self.num_tokens = 0

    def add(self, tokens: Iterable[int] | np.ndarray) -> None:
        """Append one sequence (= one document)."""
        arr = np.asarray(tokens, dtype=self.dtype)
        self._bin.write(arr.tobytes(order="C"))
        self._pending.append(arr.size)
        self.num_tokens += arr.size
        if len(self._pending) >= 65536:
            self._flush_sizes()

    def add_batch(self, tokens: np.ndarray, sizes: np.ndarray) -> None:
        """Append ``len(sizes)`` sequences whose tokens lie back to back in ``tokens`` (no per-sequence copies)."""
        tokens = np.ascontiguousarray(tokens, dtype=self.dtype)
        if int(np.sum(sizes, dtype=np.int64)) != tokens.size:
            raise ValueError(f"sizes add up to {int(np.sum(sizes))} tokens, got {tokens.size}")
        self._bin.write(memoryview(tokens).cast("B"))
        self._flush_sizes()
        self._sizes.append(np.asarray(sizes, dtype=np.int32))
        self.num_tokens += tokens.size

    def _flush_sizes(self) -> None:
        if self._pending:
            self._sizes.append(np.asarray(self._pending, dtype=np.int32))
            self._pending = []

    @property
    def num_sequences(self) -> int:
        return sum(len(s) for s in self._sizes) + len(self._pending)

    def finalize(self) -> None:
        """Write the index and make both temporaries durable (not yet under their final names)."""
        self._flush_sizes()
        sizes = np.concatenate(self._sizes) if self._sizes else np.zeros(0, np.int32)
        self._bin.flush()
        os.fsync(self._bin.fileno())
        self._bin.close()
        with open(self.idx_tmp, "wb") as f:
            write_index(f, self.dtype, sizes)
            f.flush()
            os.fsync(f.fileno())
        self._finalized = True

    def abort(self) -> None:
        """Close the ``.bin`` being written, then remove the temporaries (on error or interruption)."""
        if not self._bin.closed:
            self._bin.close()
        super().abort()


def remove_dataset(prefix: str | os.PathLike) -> None:
    """Delete ``PREFIX.idx`` then ``PREFIX.bin`` if present (index first: never an old index over new data)."""
    index_file_path(prefix).unlink(missing_ok=True)
    data_file_path(prefix).unlink(missing_ok=True)


def remove_stale_temporaries(prefix: str | os.PathLike) -> list[Path]:
    """Delete the temporaries a killed writer left for ``prefix`` (those of processes no longer alive)."""
    return [tmp for final in (data_file_path(prefix), index_file_path(prefix)) for tmp in remove_stale_leftovers(final)]


class IndexedDataset:
    """Read-only, memory-mapped view of ``PREFIX.{bin,idx}``; ``ds[i]`` is sequence ``i`` as a numpy array."""

    def __init__(self, prefix: str | os.PathLike) -> None:
        self.prefix = os.fspath(prefix)
        idx_path = index_file_path(self.prefix)
        raw = np.memmap(idx_path, dtype=np.uint8, mode="r")
        header = parse_index_header(bytes(raw[:HEADER_SIZE]), len(raw), idx_path)
        self.dtype = header.dtype
        n, d = header.num_sequences, header.num_docs
        self.sizes = np.frombuffer(raw, dtype="<i4", count=n, offset=header.sizes_offset)
        self.pointers = np.frombuffer(raw, dtype="<i8", count=n, offset=header.pointers_offset)
        self.doc_idx = np.frombuffer(raw, dtype="<i8", count=d, offset=header.doc_idx_offset)
        bin_path = data_file_path(self.prefix)
        total = int(self.sizes.sum(dtype=np.int64)) * self.dtype.itemsize
        actual = bin_path.stat().st_size if bin_path.exists() else -1
        if actual != total:
            raise IndexFormatError(f"{bin_path}: {actual} bytes, the index describes {total}")
        self._bin = np.memmap(bin_path, dtype=self.dtype, mode="r") if total else np.zeros(0, self.dtype)

    def __len__(self) -> int:
        return len(self.sizes)

    @property
    def tokens(self) -> np.ndarray:
        """Every token of the ``.bin`` file, sequence after sequence (memory-mapped, read-only)."""
        return self._bin

    def __getitem__(self, i: int) -> np.ndarray:
        start = int(self.pointers[i]) // self.dtype.itemsize
        return np.asarray(self._bin[start:start + int(self.sizes[i])])

    def max_token_id(self) -> int:
        """The largest token id in the ``.bin`` (-1 when empty): one memory-mapped pass, for vocab checks."""
        return int(self._bin.max()) if len(self._bin) else -1

    def get(self, i: int, offset: int = 0, length: int | None = None) -> np.ndarray:
        """Tokens ``offset:offset+length`` of sequence ``i`` (as Megatron's ``IndexedDataset.get``)."""
        size = int(self.sizes[i])
        length = size - offset if length is None else length
        start = int(self.pointers[i]) // self.dtype.itemsize + offset
        return np.asarray(self._bin[start:start + length])
