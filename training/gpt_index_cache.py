"""On-disk cache of the GPT index maps, under the fork's file names and dtypes but keyed by a content hash.

The fork's ``_build_index_mappings`` writes ``{prefix}_{name}_indexmap_{N}ns_{seq}sl_{seed}s_{doc,sample,
shuffle}_idx.npy`` and reuses them whenever all three exist: change the documents, the ``--split`` (it is
not in the name) or the data under the same prefix and it silently trains on stale maps. Here the same
three files (``np.save`` format 1.0: int32, int32, uint32; the fork can read ours and vice versa) are
written into a cache folder under the fork's names, with a sidecar ``..._key.json`` holding a SHA-256 of the
``.idx`` file and every parameter (document range included). They are reused only when the key matches;
otherwise rebuilt. The sidecar is removed first and written last, so an interrupted build never looks
complete. Library module (used by ``training.gpt_samples``); no command line.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from guardrails.atomic_files import write_json_atomic
from dataset.gpt_index import EpochPlan, GPTIndex, GPTIndexError, build_gpt_index
from dataset.indexed_dataset import index_file_path
from training.index_cache import content_key, save_npy_atomic

KEY_TAG = "gpt-index v1"
KINDS = ("doc", "sample", "shuffle")


@dataclass(frozen=True)
class GPTIndexFiles:
    """Where one split's maps live: the fork's names, in ``cache_dir``."""

    base: Path  # cache_dir / "{prefix}_{name}_indexmap_{N}ns_{seq}sl_{seed}s"

    @classmethod
    def for_dataset(cls, cache_dir: str | os.PathLike, prefix: str | os.PathLike, name: str, num_samples: int,
                    seq_length: int, seed: int) -> "GPTIndexFiles":
        return cls(Path(cache_dir) / f"{Path(prefix).name}_{name}_indexmap_{num_samples}ns_{seq_length}sl_{seed}s")

    def map_path(self, kind: str) -> Path:
        return self.base.with_name(f"{self.base.name}_{kind}_idx.npy")

    @property
    def key_path(self) -> Path:
        return self.base.with_name(f"{self.base.name}_key.json")


@dataclass
class CachedGPTIndex:
    index: GPTIndex
    rebuilt: bool


def load_or_build_gpt_index(files: GPTIndexFiles, prefix: str | os.PathLike, sizes: np.ndarray,
                            documents: range, num_samples: int, seq_length: int, seed: int) -> CachedGPTIndex:
    """The maps of ``documents`` of the dataset at ``prefix``: from the cache when its key matches, else built."""
    params = {"documents": [documents.start, documents.stop], "num_samples": num_samples,
              "seq_length": seq_length, "seed": seed}
    key = content_key(KEY_TAG, [index_file_path(prefix)], params)
    cached = _load(files, key)
    if cached is not None:
        return CachedGPTIndex(cached, rebuilt=False)
    folder = files.key_path.parent
    if folder.exists() and not folder.is_dir():  # else mkdir's FileExistsError, a traceback
        raise GPTIndexError(f"{folder}: exists and is not a folder; give the index maps a folder (--cache-dir)")
    index = build_gpt_index(np.arange(documents.start, documents.stop, dtype=np.int32), sizes, num_samples,
                            seq_length, seed)
    folder.mkdir(parents=True, exist_ok=True)
    files.key_path.unlink(missing_ok=True)  # invalidate first: a crash below leaves no matching key behind
    for kind in KINDS:
        save_npy_atomic(files.map_path(kind), getattr(index, f"{kind}_idx"))
    meta = {"key": key, "params": params, "plan": asdict(index.plan),
            "shapes": {kind: list(getattr(index, f"{kind}_idx").shape) for kind in KINDS}}
    write_json_atomic(files.key_path, meta, indent=1)
    return CachedGPTIndex(index, rebuilt=True)


def _load(files: GPTIndexFiles, key: str) -> GPTIndex | None:
    try:
        meta = json.loads(files.key_path.read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or meta.get("key") != key:
            return None
        maps = {kind: np.load(files.map_path(kind), allow_pickle=False, mmap_mode="r") for kind in KINDS}
        plan = EpochPlan(**meta["plan"])
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if any(list(maps[kind].shape) != meta["shapes"].get(kind) for kind in KINDS):
        return None
    if maps["doc"].dtype != np.int32 or maps["sample"].dtype != np.int32 or maps["shuffle"].dtype.kind not in "ui":
        return None
    return GPTIndex(maps["doc"], maps["sample"], maps["shuffle"], plan)
