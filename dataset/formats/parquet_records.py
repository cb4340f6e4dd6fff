"""Read parquet record files (the StarCoder data's and The Stack's layout) for ``dataset.preprocess``, streaming
one row group at a time, as the same chunks of JSON lines that ``dataset.formats.jsonl_records`` reads from jsonl.

Used by ``dataset.preprocess`` (not a command); needs ``pyarrow`` (``pip install codeft[parquet]``). Each row
becomes the JSON line ``record_line`` writes (the selected columns, in key order, compact, UTF-8:
``orjson.dumps``), so every rule of the jsonl path holds as it is: the same keys (``outputs`` for a missing
``targets``), the same checks and skip reasons (a null cell is ``null_key``, a number ``non_string_key``, an
empty string ``empty_field``; a column missing from the file is ``missing_key`` on every row), the same
``--valid-fraction`` hash (over that line), the same tokenization. A parquet file and a jsonl file of the same
records written by ``record_line`` therefore give byte-identical datasets (``tests/test_parquet_inputs.py``).
Issues name the row (``FILE:ROW``, counted from 1 over the whole file) where jsonl names the line.

Only the needed columns of one row group are in memory at a time (The Stack's ``content`` of a group is tens
of MB), cut into chunks of about ``chunk_bytes`` of JSON. A row whose line would pass ``max_line_bytes`` is a
:class:`~dataset.formats.jsonl_records.LongLine`, as in jsonl. Shards (``dataset.preprocessing.shard_plan``) cut a parquet file at
row-group boundaries: a piece ``(start, end)`` reads the row groups whose data starts in it
(:func:`row_group_starts`); the digest of the file's bytes in the piece, as for a jsonl range, is
``dataset.formats.input_files``'s.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import orjson

from dataset.formats.jsonl_records import DEFAULT_TARGETS_ALIAS, READ_BLOCK, InputFileError, LineChunk, LongLine

PARQUET_SUFFIX = ".parquet"
ROWS_PER_BATCH = 1024  # rows converted to Python at once within a row group


def is_parquet(path: str | os.PathLike) -> bool:
    return Path(path).suffix == PARQUET_SUFFIX


def _open(path: str | os.PathLike) -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise InputFileError(f"{path}: reading parquet needs pyarrow: pip install pyarrow (or codeft[parquet])") from exc
    try:
        return pq.ParquetFile(str(path))
    except (OSError, ValueError) as exc:  # pyarrow.ArrowInvalid is a ValueError
        raise InputFileError(f"{path}: not a readable parquet file ({exc})") from exc


def record_line(values: dict[str, Any]) -> bytes:
    """The JSON line one row stands for (what a jsonl file of the same records holds, and what is hashed)."""
    return orjson.dumps(values, default=lambda v: {"unsupported_type": type(v).__name__})


def row_group_starts(path: str | os.PathLike) -> list[int]:
    """Byte offset of each row group's first page (from the footer; no data is read)."""
    meta = _open(path).metadata
    starts = []
    for g in range(meta.num_row_groups):
        column = meta.row_group(g).column(0)
        offsets = [o for o in (column.dictionary_page_offset, column.data_page_offset) if o]
        starts.append(min(offsets))
    return starts


def next_row_group_start(path: str | os.PathLike, offset: int, size: int) -> int:
    """The first row-group start at or after ``offset`` (``size`` when none follows): a shard boundary."""
    return next((start for start in row_group_starts(path) if start >= offset), size)


def count_parquet_records(path: str | os.PathLike) -> int:
    return int(_open(path).metadata.num_rows)


def _columns(schema_names: list[str], keys: tuple[str, ...]) -> list[str]:
    wanted = []
    for key in keys:
        if key not in schema_names and DEFAULT_TARGETS_ALIAS.get(key) in schema_names:
            key = DEFAULT_TARGETS_ALIAS[key]
        if key in schema_names:
            wanted.append(key)
    return wanted


def iter_parquet_chunks(path: str | os.PathLike, keys: tuple[str, ...], max_line_bytes: int,
                        chunk_bytes: int = READ_BLOCK, byte_range: tuple[int, int] | None = None
                        ) -> Iterator[LineChunk | LongLine]:
    """Yield the rows of ``path`` (the row groups starting inside ``byte_range``) as chunks of JSON lines."""
    name = os.fspath(path)
    parquet = _open(path)
    meta = parquet.metadata
    columns = _columns(parquet.schema_arrow.names, keys)
    starts = row_group_starts(path)
    first_row = 1
    for group in range(meta.num_row_groups):
        rows_in_group = meta.row_group(group).num_rows
        if byte_range is None or byte_range[0] <= starts[group] < byte_range[1]:
            yield from _group_chunks(parquet, name, group, columns, first_row, max_line_bytes, chunk_bytes)
        first_row += rows_in_group


def _group_chunks(parquet: Any, name: str, group: int, columns: list[str], first_row: int, max_line_bytes: int,
                  chunk_bytes: int) -> Iterator[LineChunk | LongLine]:
    lines: list[bytes] = []
    size, start, row = 0, first_row, first_row
    for batch in parquet.iter_batches(batch_size=ROWS_PER_BATCH, row_groups=[group], columns=columns):
        values = batch.to_pydict()
        for i in range(batch.num_rows):
            line = record_line({column: values[column][i] for column in columns})
            if len(line) > max_line_bytes:  # reported like an over-long jsonl line, never parsed
                if lines:
                    yield LineChunk(name, start, b"\n".join(lines))
                yield LongLine(name, row, len(line))
                lines, size, start = [], 0, row + 1
            else:
                lines.append(line)
                size += len(line) + 1
                if size >= chunk_bytes:
                    yield LineChunk(name, start, b"\n".join(lines))
                    lines, size, start = [], 0, row + 1
            row += 1
    if lines:
        yield LineChunk(name, start, b"\n".join(lines))
