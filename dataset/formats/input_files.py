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

import os
from pathlib import Path
from typing import Iterator

from dataset.formats.jsonl_records import InputFileError, LineChunk, LongLine, count_records, iter_chunks
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
    """The file's records as chunks of JSON lines (``dataset.formats.jsonl_records.iter_chunks`` for jsonl)."""
    if is_parquet(path):
        return iter_parquet_chunks(path, keys, max_line_bytes, chunk_bytes, digest, byte_range)
    return iter_chunks(path, max_line_bytes, chunk_bytes, digest, byte_range)
