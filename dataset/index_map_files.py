"""The fork's index-map files next to a dataset: whose they are, which are stale, removing a replaced dataset's.

The fork caches the order of its samples as ``.npy`` files next to the data it reads, and reuses any file with
the right name without checking that it still fits the data (DESIGN.md 2.3, 2.6)::

    {prefix}_{group}_indexmap_{N}ns_{seed}s_decoder_packed_{batch,shuffle}_idx.npy     # finetune_mtf.py
    {prefix}_{group}_indexmap_{N}ns_{seq}sl_{seed}s_{doc,sample,shuffle}_idx.npy       # pretrain_gpt.py

After the data at a prefix is rewritten, its old maps make the fork die ("Items to be packed do not fit inside
a single sample") or, worse, train on rows packed from other documents. So ``dataset.preprocess`` and
``dataset.merge_shards`` remove the maps of the datasets they replace (``remove_index_maps``, from
``commit_datasets``), and preflight refuses maps older than their data or whose document ids do not fit it
(``stale_index_maps``).

A map's name starts with its dataset's name, and one dataset's name can start another's (``pairs`` and
``pairs_valid``): a map belongs to the longest dataset name in its folder (or among the names given) that its
name starts with, followed by ``_``. Library module, no command line.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

import numpy as np

MAP_NAME = re.compile(r"^(?P<stem>.+)_indexmap_\d+ns_(?:\d+sl_)?\d+s_"
                      r"(?:decoder_packed_(?:batch|shuffle)|doc|sample|shuffle)_idx\.npy$")
# a map older than its data by less than this is not called stale: a plain copy of a folder (cp -r) writes the
# maps and the data within moments, in any order; a rewrite of the data comes long after the maps were built
COPY_SLACK_S = 2.0
_DOCUMENT_INDEX = re.compile(r"^(?P<prefix>.+)_[^_/]+_document\.idx$")


def dataset_names(folder: Path) -> set[str]:
    """Names of the datasets in ``folder``: every ``X`` of an ``X.idx``, and ``P`` of a ``P_ROLE_document.idx``."""
    names = set()
    for index in folder.glob("*.idx"):
        names.add(index.name[:-len(".idx")])
        match = _DOCUMENT_INDEX.match(index.name)
        if match:
            names.add(match.group("prefix"))
    return names


def map_owner(map_file: str, names: Iterable[str]) -> str | None:
    """The dataset name (of ``names``) an index map file name belongs to, or None when it is not a map of any."""
    match = MAP_NAME.match(map_file)
    if match is None:
        return None
    owners = [n for n in names if match.group("stem").startswith(n + "_")]
    return max(owners, key=len) if owners else None


def index_maps_of(prefixes: Iterable[str]) -> dict[str, list[Path]]:
    """Every index map next to each dataset prefix (``PREFIX`` or ``PREFIX_ROLE_document``), by prefix."""
    wanted = [str(Path(p).absolute()) for p in prefixes]
    found: dict[str, list[Path]] = {p: [] for p in wanted}
    for folder in sorted({Path(p).parent for p in wanted}):
        if not folder.is_dir():
            continue
        names = {str(folder / n) for n in dataset_names(folder)} | {p for p in wanted if Path(p).parent == folder}
        for path in sorted(folder.glob("*_indexmap_*_idx.npy")):
            owner = map_owner(str(path), names)
            if owner in found:
                found[owner].append(path)
    return found


def remove_index_maps(prefixes: Iterable[str]) -> list[Path]:
    """Delete the index maps of datasets that are being replaced (they describe the old data); returns them."""
    removed = []
    for paths in index_maps_of(prefixes).values():
        for path in paths:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def stale_index_maps(prefix: str, data_files: Iterable[Path], documents: int | None = None) -> list[str]:
    """Why each index map of ``prefix`` cannot be the fork's for the data as it is now (empty: none is stale).

    ``data_files``: the dataset's ``.bin``/``.idx`` files (a map older than any of them was built from older
    data); ``documents``: how many the dataset holds now (a packed map's shuffle index holds document ids, which
    are below the document count of whatever range it was built for).
    """
    data_time = max((f.stat().st_mtime for f in data_files if f.exists()), default=None)
    problems = []
    for path in index_maps_of([prefix])[str(Path(prefix).absolute())]:
        if data_time is not None and path.stat().st_mtime < data_time - COPY_SLACK_S:
            problems.append(f"{path}: older than the data it indexes")
        elif documents is not None and path.name.endswith("_decoder_packed_shuffle_idx.npy"):
            try:
                order = np.load(path, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as exc:
                problems.append(f"{path}: unreadable ({exc})")
                continue
            if len(order) and int(order.max()) >= documents:
                problems.append(f"{path}: indexes document {int(order.max())}, the data has {documents} documents")
    return problems
