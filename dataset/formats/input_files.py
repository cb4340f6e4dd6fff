"""The files a preprocess run reads, whatever their format: jsonl (plain or ``.gz``) or parquet, and folders of
languages laid out as the StarCoder data and The Stack are (``ROOT/go/*.parquet``, ``ROOT/rust/*.parquet``).

Used by ``dataset.preprocess`` (not a command). ``--input ROOT --languages go,rust`` reads every parquet (or
jsonl) file under ``ROOT/go`` and then ``ROOT/rust``, each folder's files in sorted order, so the record order,
and with it the held-out draw and the shards, are the same on every machine. A language folder that is not
there is an error naming the ones that are. Files given by name are read as given.

    paths = expand_inputs(["/data/starcoderdata"], ("go", "rust"))
    for chunk in iter_input_chunks(path, keys, max_line_bytes, ...): ...
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterator

from dataset.formats.jsonl_records import READ_BLOCK, InputFileError, LineChunk, LongLine, count_records, iter_chunks
from dataset.formats.parquet_records import count_parquet_records, is_parquet, iter_parquet_chunks

RECORD_SUFFIXES = (".parquet", ".jsonl", ".jsonl.gz", ".json", ".json.gz")


def _record_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name.endswith(RECORD_SUFFIXES))


def expand_inputs(inputs: tuple[str, ...] | list[str], languages: tuple[str, ...] | list[str]) -> list[str]:
    """``inputs`` with every folder replaced by the record files of its ``languages`` subfolders, in order."""
    paths: list[str] = []
    for given in inputs:
        root = Path(given)
        if not root.is_dir():
            paths.append(str(given))
            continue
        if not languages:
            raise InputFileError(f"{given}: a folder; name the languages to read from it (--languages go,rust)"
                                 " or give the files themselves")
        present = sorted(p.name for p in root.iterdir() if p.is_dir())
        for language in languages:
            folder = root / language
            if not folder.is_dir():
                raise InputFileError(f"{folder}: no such language folder; {given} has: {', '.join(present) or 'none'}")
            files = _record_files(folder)
            if not files:
                raise InputFileError(f"{folder}: no .parquet or .jsonl files in this language folder")
            paths.extend(str(p) for p in files)
    return paths


def count_input_records(paths: list[str], max_line_bytes: int) -> int:
    """How many records the files hold (non-blank jsonl lines, parquet rows): the hold-out draw's population."""
    return sum(count_parquet_records(p) if is_parquet(p) else count_records([p], max_line_bytes) for p in paths)


def iter_input_chunks(path: str | os.PathLike, keys: tuple[str, ...], max_line_bytes: int, chunk_bytes: int,
                      digest: list[str] | None = None, byte_range: tuple[int, int] | None = None
                      ) -> Iterator[LineChunk | LongLine]:
    """The file's records as chunks of JSON lines (``dataset.formats.jsonl_records.iter_chunks`` for jsonl); at the
    end the sha256 of the bytes read (``byte_range``, else the whole file) is appended to ``digest``."""
    if is_parquet(path):
        return _parquet_chunks(path, keys, max_line_bytes, chunk_bytes, digest, byte_range)
    return iter_chunks(path, max_line_bytes, chunk_bytes, digest, byte_range)  # hashed as it is read


def _parquet_chunks(path: str | os.PathLike, keys: tuple[str, ...], max_line_bytes: int, chunk_bytes: int,
                    digest: list[str] | None, byte_range: tuple[int, int] | None) -> Iterator[LineChunk | LongLine]:
    yield from iter_parquet_chunks(path, keys, max_line_bytes, chunk_bytes, byte_range)
    if digest is not None:  # pyarrow reads the footer and the chosen columns only: the bytes are hashed apart
        start, end = byte_range if byte_range is not None else (0, os.path.getsize(path))
        digest.append(range_sha256(path, start, end))


def range_sha256(path: str | os.PathLike, start: int, end: int) -> str:
    """The sha256 of bytes ``start:end`` of ``path`` as they are now: what a run records for the piece it read,
    and what ``dataset.preprocessing.shard_manifests`` compares with that record."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        handle.seek(start)
        left = end - start
        while left > 0 and (block := handle.read(min(left, READ_BLOCK))):
            digest.update(block)
            left -= len(block)
    return digest.hexdigest()
