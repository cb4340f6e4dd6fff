"""The fork's index-map files next to a dataset: whose they are, which are stale, removing a replaced dataset's.

The fork caches the order of its samples as ``.npy`` files next to the data it reads, and reuses any file with
the right name without checking that it still fits the data (DESIGN.md 2.3, 2.6)::

    {prefix}_{group}_indexmap_{N}ns_{seed}s_decoder_packed_{batch,shuffle}_idx.npy     # finetune_mtf.py
    {prefix}_{group}_indexmap_{N}ns_{seq}sl_{seed}s_{doc,sample,shuffle}_idx.npy       # pretrain_gpt.py

After the data at a prefix is rewritten, its old maps make the fork die ("Items to be packed do not fit inside
a single sample") or, worse, train on rows packed from other documents. So ``dataset.preprocess`` and
``dataset.merge_shards`` remove the maps of the datasets they replace (``remove_index_maps``, from
``commit_datasets``), and preflight refuses maps older than their data, whose document ids do not fit it, or
whose rows were packed for another ``seq_length`` (``stale_index_maps``): the packed maps' names hold the number
of samples and the seed but not the row length, so a run with another ``seq_length`` reuses them by name. Their
rows are the fork's greedy packing of the shuffled documents exactly when every row fits the row length, could
not take the next document, and only documents longer than a row fall between rows (``packing_problem``).

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


PACKED_BATCH, PACKED_SHUFFLE = "_decoder_packed_batch_idx.npy", "_decoder_packed_shuffle_idx.npy"


def stale_index_maps(prefix: str, data_files: Iterable[Path], documents: int | None = None,
                     lengths: np.ndarray | None = None, row_length: int | None = None) -> list[str]:
    """Why each index map of ``prefix`` cannot be the fork's for the data as it is now (empty: none is stale).

    ``data_files``: the dataset's ``.bin``/``.idx`` files (a map older than any of them was built from older
    data); ``documents``: how many the dataset holds now (a packed map's shuffle index holds document ids, which
    are below the document count of whatever range it was built for); ``lengths`` (tokens of each pair, inputs +
    targets) and ``row_length`` (the run's ``seq_length + 1``): a packed batch map must be the greedy packing of
    its shuffle map into rows of that length (``packing_problem``).
    """
    data_time = max((f.stat().st_mtime for f in data_files if f.exists()), default=None)
    problems = []
    for path in index_maps_of([prefix])[str(Path(prefix).absolute())]:
        if data_time is not None and path.stat().st_mtime < data_time - COPY_SLACK_S:
            problems.append(f"{path}: older than the data it indexes")
        elif documents is not None and path.name.endswith(PACKED_SHUFFLE):
            try:
                order = np.load(path, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as exc:
                problems.append(f"{path}: unreadable ({exc})")
                continue
            if len(order) and int(order.max()) >= documents:
                problems.append(f"{path}: indexes document {int(order.max())}, the data has {documents} documents")
        elif lengths is not None and row_length is not None and path.name.endswith(PACKED_BATCH):
            shuffle = path.with_name(path.name[:-len(PACKED_BATCH)] + PACKED_SHUFFLE)
            try:
                rows = np.load(path, mmap_mode="r", allow_pickle=False)
                order = np.load(shuffle, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError):
                continue  # a missing or unreadable shuffle map is its own finding (or the fork rebuilds both)
            problem = packing_problem(rows, order, lengths, row_length)
            if problem:
                problems.append(f"{path}: {problem}")
    return problems


def packing_problem(rows: np.ndarray, order: np.ndarray, lengths: np.ndarray, row_length: int) -> str | None:
    """Why ``rows`` ([start, end) into ``order``) are not the fork's greedy packing of the documents ``order``
    names (pair lengths ``lengths``) into rows of ``row_length`` tokens; None when they are.

    The fork closes a row when the next document would overflow it and skips a document longer than a row, so
    its rows are exactly those that fit, could not take the next document, and leave out only documents longer
    than a row. Document ids beyond ``lengths`` are left to the document-count check.
    """
    rows, order = np.asarray(rows), np.asarray(order)
    if rows.ndim != 2 or rows.shape[1:] != (2,) or order.ndim != 1:
        return f"not a packed map (shape {rows.shape})"
    if not len(rows) or not len(order):
        return None
    if int(order.min()) < 0 or int(order.max()) >= len(lengths) or int(rows.min()) < 0 \
            or int(rows.max()) > len(order):
        return None
    starts, ends = rows[:, 0].astype(np.int64), rows[:, 1].astype(np.int64)
    tokens = np.asarray(lengths, dtype=np.int64)[order]
    cumulative = np.concatenate(([0], np.cumsum(tokens)))
    filled = cumulative[ends] - cumulative[starts]
    too_long = np.flatnonzero(filled > row_length)
    if len(too_long):
        k = int(too_long[0])
        return (f"row {k} packs {int(filled[k])} tokens, more than the {row_length} of seq_length {row_length - 1}"
                " (built for a longer seq_length)")
    has_next = ends < len(order)
    room = np.flatnonzero(has_next & (filled + tokens[np.minimum(ends, len(order) - 1)] <= row_length))
    if len(room):
        k = int(room[0])
        return (f"row {k} ({int(filled[k])} tokens) would have taken the next document"
                f" ({int(tokens[ends[k]])} tokens) in rows of {row_length} (built for a shorter seq_length)")
    if (starts[1:] < ends[:-1]).any() or (ends <= starts).any():
        return "rows overlap or are empty"
    covered = np.zeros(len(order) + 1, dtype=np.int64)
    np.add.at(covered, starts, 1)
    np.add.at(covered, ends, -1)
    left_out = np.flatnonzero((np.cumsum(covered)[:int(ends[-1])] == 0) & (tokens[:int(ends[-1])] <= row_length))
    if len(left_out):
        return (f"leaves out document {int(order[left_out[0]])} ({int(tokens[left_out[0]])} tokens), which fits"
                f" a row of {row_length} (built for a shorter seq_length)")
    return None
