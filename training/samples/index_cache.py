"""On-disk cache of the packed-MTF index maps, under the fork's file names but keyed by a content hash.

The fork writes ``{prefix}_{name}_indexmap_{N}ns_{seed}s_decoder_packed_{batch,shuffle}_idx.npy`` and,
if both files exist, reuses them without looking: change the data, the range, the row length or the
range-offset behaviour and it silently trains on stale maps. Here the same two ``.npy`` files (same
names, int64, ``np.save`` format, so the fork can read ours and vice versa) get a sidecar
``..._decoder_packed_key.json`` holding a SHA-256 over the ``.idx`` files of both indexed datasets and
every parameter. The maps are reused only when the sidecar's key matches; otherwise they are rebuilt.
The maps and the sidecar are written under temporary names and renamed into place together, the sidecar last
(``guardrails.file_set``), so an interrupted build leaves the earlier maps with their sidecar or the new ones with
theirs, never maps that no sidecar proves (which every later run would refuse). The sidecar also keeps what the fork only logs (skipped over-long pairs), and is the
record of both maps (sizes and hashes, ``guardrails.output_records``): a file in the cache folder named like a
map is replaced only when its sidecar proves it one this cache wrote (the fork's own maps, or a user's file of
that name, are refused, never overwritten).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np

from guardrails.file_set import atomic_file_set
from guardrails.output_paths import claim_file
from guardrails.output_records import OutputKind
from dataset.formats.indexed_dataset import index_file_path
from dataset.splitting.packed_index import PackedIndex, SkippedPair

KEY_VERSION = 1
# one writer for every command that builds maps (training.packing, the engine): a cache is shared by design
# The writer's name that every existing cache records: it stays as it was when this module moved to samples/.
INDEX_MAPS = OutputKind("an index map of this toolkit's cache", "training.index_cache")


def claim_maps(maps: list[Path], key: Path) -> None:
    """Refuse, before a map is written, a file at a map's name that ``key`` (its sidecar) does not prove."""
    for path in maps:
        claim_file(path, INDEX_MAPS, "--cache-dir", record=key, track=False)


def store_maps(key: Path, arrays: dict[Path, np.ndarray], meta: dict) -> None:
    """Write ``arrays`` (path -> map) and their sidecar ``key`` (``meta`` + the record), put in place together: an
    interrupt leaves the earlier maps with their key or the new ones with theirs, never maps no key proves."""
    key.parent.mkdir(parents=True, exist_ok=True)
    claim_maps(list(arrays), key)
    with atomic_file_set(next(iter(arrays)), INDEX_MAPS, meta, record=key) as files:
        for path, array in arrays.items():
            with open(files.temporary(path), "wb") as handle:
                save_npy(handle, array)


@dataclass(frozen=True)
class IndexMapFiles:
    """Where one dataset's index maps live (the fork's names, in ``cache_dir``)."""

    batch_idx: Path
    shuffle_idx: Path
    key: Path

    @classmethod
    def for_dataset(cls, cache_dir: Path, prefix: str | os.PathLike, name: str, num_samples: int,
                    seed: int) -> "IndexMapFiles":
        base = f"{Path(prefix).name}_{name}_indexmap_{num_samples}ns_{seed}s_decoder_packed"
        cache_dir = Path(cache_dir)
        return cls(cache_dir / f"{base}_batch_idx.npy", cache_dir / f"{base}_shuffle_idx.npy",
                   cache_dir / f"{base}_key.json")


def cache_key(prefix: str | os.PathLike, params: dict) -> str:
    """SHA-256 of the inputs/targets ``.idx`` bytes plus the JSON of ``params`` (sorted keys)."""
    paths = [index_file_path(f"{os.fspath(prefix)}_{key}_document") for key in ("inputs", "targets")]
    return content_key(f"packed-mtf-index v{KEY_VERSION}", paths, params)


def content_key(tag: str, paths: list[Path], params: dict) -> str:
    """SHA-256 of ``tag``, the bytes of every file in ``paths`` and the JSON of ``params`` (sorted keys)."""
    digest = hashlib.sha256()
    digest.update(f"{tag}\n".encode())
    for path in paths:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
        digest.update(b"\0")
    digest.update(json.dumps(params, sort_keys=True).encode())
    return digest.hexdigest()


@dataclass
class CachedIndex:
    """Index maps as loaded from (or just written to) the cache."""

    index: PackedIndex
    rebuilt: bool


def load_or_build(files: IndexMapFiles, key: str, build: Callable[[], PackedIndex]) -> CachedIndex:
    """Return the cached maps when their key matches ``key``; else ``build()`` and store them."""
    cached = _load(files, key)
    if cached is not None:
        return CachedIndex(cached, rebuilt=False)
    index = build()
    _store(files, key, index)
    return CachedIndex(index, rebuilt=True)


def _load(files: IndexMapFiles, key: str) -> PackedIndex | None:
    try:
        meta = json.loads(files.key.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("key") != key:
        return None
    try:
        batch_idx = np.load(files.batch_idx, allow_pickle=False, mmap_mode="r")
        shuffle_idx = np.load(files.shuffle_idx, allow_pickle=False, mmap_mode="r")
    except (OSError, ValueError):
        return None
    if (batch_idx.dtype != np.int64 or shuffle_idx.dtype != np.int64 or batch_idx.ndim != 2
            or batch_idx.shape[1:] != (2,) or shuffle_idx.ndim != 1 or batch_idx.shape[0] != meta.get("rows")
            or shuffle_idx.shape[0] != meta.get("shuffle_len")):
        return None
    skipped = [SkippedPair(int(d), int(n), int(e)) for d, n, e in meta.get("skipped", [])]
    return PackedIndex(shuffle_idx, batch_idx, int(meta.get("epochs", 0)), skipped)


def _store(files: IndexMapFiles, key: str, index: PackedIndex) -> None:
    meta = {
        "key": key,
        "rows": index.num_rows,
        "shuffle_len": int(index.shuffle_idx.shape[0]),
        "epochs": index.epochs,
        "skipped": [[s.document, s.length, s.epoch] for s in index.skipped],
    }
    store_maps(files.key, {files.shuffle_idx: np.asarray(index.shuffle_idx, dtype=np.int64),
                           files.batch_idx: np.asarray(index.batch_idx, dtype=np.int64)}, meta)


def save_npy(handle: BinaryIO, array: np.ndarray) -> None:
    """``np.save`` (format 1.0, as the fork writes its maps) into an open file (so numpy appends no ".npy")."""
    np.save(handle, np.ascontiguousarray(array), allow_pickle=False)

