"""The files the preprocess stage writes, and the order it makes them appear in (used by ``dataset.preprocess``).

Names: ``{prefix}_inputs_document.{bin,idx}`` and ``{prefix}_targets_document.{bin,idx}`` (what the fork's
``finetune_mtf.py`` reads), plus ``{prefix}_valid_...`` for held-out documents. The two roles are always
called ``inputs`` and ``targets`` on disk, whatever the JSON field names (``--keys``) are. With a single key
(raw documents for pretraining) the one role is the key itself, as in the fork: ``{prefix}_content_document``.

Crash safety: every file is written under a temporary name (see ``IndexedDatasetWriter``). ``commit`` first
makes all temporaries durable, then deletes the old manifest and old ``.idx`` files, renames every ``.bin``,
then every ``.idx``; the caller writes the manifest last. A run killed before the renames leaves only
temporaries, which no reader opens and the next run deletes; a rename that fails removes the files already
renamed. What remains is the instant between the first and the last ``.idx`` rename: only the manifest,
written after them, says the set is complete.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from dataset.index_map_files import remove_index_maps
from dataset.indexed_dataset import (
    IndexedDatasetWriter, TemporaryDatasetFiles, data_file_path, index_file_path, remove_dataset,
    remove_stale_temporaries,
)

ROLES = ("inputs", "targets")
VALID_SUFFIX = "_valid"


def roles_for_keys(keys: tuple[str, ...]) -> tuple[str, ...]:
    """The on-disk roles of a run: ``inputs``/``targets`` for two keys, the key itself for one."""
    return ROLES if len(keys) == 2 else (keys[0],)


def document_prefix(prefix: str, role: str) -> str:
    """``PREFIX_inputs_document``: the Megatron dataset prefix of one role."""
    return f"{prefix}_{role}_document"


def valid_output_prefix(prefix: str) -> str:
    """Where held-out documents go: ``PREFIX_valid``."""
    return f"{prefix}{VALID_SUFFIX}"


def output_files(prefix: str, roles: tuple[str, ...] = ROLES) -> list[Path]:
    """The files of one split (``.bin`` and ``.idx`` of every role)."""
    return [f(document_prefix(prefix, role)) for role in roles for f in (data_file_path, index_file_path)]


class DocumentPairWriter:
    """The inputs and targets datasets of one split, written in lock step (one document each per record).

    With a single role (raw documents) it is one dataset.
    """

    def __init__(self, prefix: str, dtype: np.dtype, roles: tuple[str, ...] = ROLES) -> None:
        self.prefix, self.roles = prefix, roles
        for role in roles:
            remove_stale_temporaries(document_prefix(prefix, role))
        self.writers = {role: IndexedDatasetWriter(document_prefix(prefix, role), dtype) for role in roles}

    @property
    def documents(self) -> int:
        """Records written so far (each is one document in both roles)."""
        return self.writers[self.roles[0]].num_sequences

    @property
    def tokens(self) -> dict[str, int]:
        """Tokens written so far, per role."""
        return {role: self.writers[role].num_tokens for role in self.roles}

    def add(self, tokens: dict[str, np.ndarray], lengths: dict[str, np.ndarray]) -> None:
        """Append one document per record to every role; each ``lengths`` array has one entry per record."""
        if len({len(lengths[role]) for role in self.roles}) != 1:
            raise ValueError("inputs and targets must have one document per record each")
        for role in self.roles:
            self.writers[role].add_batch(tokens[role], lengths[role])


class PreprocessOutputs:
    """The train pair and, with a hold-out, the valid pair; all-or-nothing."""

    def __init__(self, prefix: str, dtype: np.dtype, with_valid: bool, roles: tuple[str, ...] = ROLES) -> None:
        self.prefix, self.roles = prefix, roles
        self.pairs: dict[str, DocumentPairWriter] = {}
        directory = Path(prefix).absolute().parent
        self._new_dirs = [d for d in [directory, *directory.parents] if not d.exists()]  # abort removes them
        try:
            self.pairs["train"] = DocumentPairWriter(prefix, dtype, roles)
            if with_valid:
                self.pairs["valid"] = DocumentPairWriter(valid_output_prefix(prefix), dtype, roles)
        except BaseException:
            self.abort()
            raise

    @property
    def _writers(self) -> list[IndexedDatasetWriter]:
        return [w for pair in self.pairs.values() for w in pair.writers.values()]

    def commit(self, manifest_path: Path) -> list[Path]:
        """Make every file durable, then rename them into place: all ``.bin`` before any ``.idx``; returns the
        fork's index maps of the replaced datasets, which it removed (``commit_datasets``)."""
        for writer in self._writers:
            writer.finalize()
        return commit_datasets(self.prefix, self.roles, self._writers, manifest_path)

    def abort(self) -> None:
        """Delete every temporary (on an error or an interrupt)."""
        for writer in self._writers:
            writer.abort()
        for directory in self._new_dirs:  # leaf first; only if still empty
            try:
                directory.rmdir()
            except OSError:
                break


def commit_datasets(prefix: str, roles: Sequence[str], datasets: Sequence[TemporaryDatasetFiles],
                    manifest_path: Path) -> list[Path]:
    """Rename finalized ``datasets`` (the splits of ``prefix``) into place: all ``.bin`` before any ``.idx``.

    Also what ``dataset.merge_shards`` commits with. The old manifest goes first: it must never vouch for a
    half-renamed set. The fork's index maps of the replaced datasets go too (``dataset.index_map_files``: the
    fork would reuse them by name on the new data); returns those removed.
    """
    manifest_path.unlink(missing_ok=True)
    # old files go, index first; a hold-out from an earlier run goes too, even when this run has none
    for split_prefix in (prefix, valid_output_prefix(prefix)):
        for role in roles:
            remove_dataset(document_prefix(split_prefix, role))
    removed = remove_index_maps(name for split_prefix in (prefix, valid_output_prefix(prefix))
                                for name in (split_prefix, *(document_prefix(split_prefix, r) for r in roles)))
    try:
        for dataset in datasets:
            dataset.commit_data()
        for dataset in datasets:
            dataset.commit_index()
    except BaseException:  # a half-renamed set must not look finished: take back what was renamed
        for dataset in datasets:
            remove_dataset(dataset.prefix)
        raise
    _fsync_directory(Path(prefix).parent)
    return removed


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)  # a bare prefix's parent is Path("."), never an empty name
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
