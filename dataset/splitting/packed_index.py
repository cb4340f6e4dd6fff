"""The fork's packed-MTF index maps (``shuffle_idx`` / ``batch_idx``), from pair lengths only. Pure numpy.

What ``decoder_packed_mtf_dataset._build_index_mappings`` computes, reproduced exactly (DESIGN.md 2.3):

* one ``np.random.RandomState(seed)`` per dataset, shared by every epoch; each epoch appends
  ``shuffle(arange(nb_documents))`` (int64) to ``shuffle_idx``;
* pairs (inputs + targets tokens) are packed greedily in that order into rows of ``row_length`` tokens
  (``seq_length + 1`` in finetune_mtf); a row closes when adding the next pair would make it longer;
  the open row at the end of an epoch carries over into the next one;
* a pair longer than a row closes the open row and is skipped (we return every skip, the fork only
  logs it);
* epochs are added until there are *more* than ``num_samples`` rows; the last open row is dropped;
* ``batch_idx`` is ``[start, end)`` into ``shuffle_idx`` per row.

Ranges: the fork only passes ``nb_documents`` to this builder and indexes the indexed dataset with the
shuffled ids directly, so a range ``0.95:1`` reads the *first* 5% of documents. With
``legacy_split_offsets=True`` we do the same (byte-identical maps); by default ``shuffle_idx`` holds
``range_start + permutation``, so the documents of the range are the ones used. For ranges that start at
0 both are identical.

The greedy walk is vectorised: for every start position ``searchsorted`` on the cumulative lengths gives
where its row would close, and the walk then jumps row by row (one step per row, not per pair).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


class PackingError(ValueError):
    """The inputs cannot be packed (e.g. every pair is longer than a row: the fork would loop forever)."""


@dataclass(frozen=True)
class SkippedPair:
    """A pair longer than a row, skipped at one occurrence (one per epoch it appears in)."""

    document: int  # index in the indexed dataset (what the fork's warning prints as ``sample id``)
    length: int
    epoch: int


@dataclass
class PackedIndex:
    """The fork's two index maps plus what it only logs."""

    shuffle_idx: np.ndarray  # int64 [epochs * nb_documents]: document ids, epoch after epoch
    batch_idx: np.ndarray  # int64 [rows, 2]: [start, end) into shuffle_idx
    epochs: int
    skipped: list[SkippedPair] = field(default_factory=list)

    @property
    def num_rows(self) -> int:
        return int(self.batch_idx.shape[0])

    @property
    def skipped_documents(self) -> list[int]:
        """Distinct documents skipped for being longer than a row, sorted."""
        return sorted({s.document for s in self.skipped})


def pair_lengths(input_sizes: np.ndarray, target_sizes: np.ndarray) -> np.ndarray:
    """Tokens per (inputs, targets) pair, int64; the two indexed datasets must be in step."""
    if len(input_sizes) != len(target_sizes):
        raise PackingError(
            f"inputs have {len(input_sizes)} documents but targets have {len(target_sizes)};"
            " the two indexed datasets are out of step (re-run preprocessing on both keys)"
        )
    return np.asarray(input_sizes, dtype=np.int64) + np.asarray(target_sizes, dtype=np.int64)


def document_offset(start: int, legacy_split_offsets: bool) -> int:
    """First document id a range really uses: 0 under the fork's bug, else the range start."""
    return 0 if legacy_split_offsets else int(start)


def epoch_permutation(rng: np.random.RandomState, nb_documents: int) -> np.ndarray:
    """The fork's ``_build_shuffle_idx``: an in-place shuffle of ``arange`` (int64) with the shared RNG."""
    result = np.arange(nb_documents, dtype=np.int64)
    rng.shuffle(result)
    return result


def build_packed_index(
    lengths: np.ndarray,
    doc_start: int,
    doc_end: int,
    num_samples: int,
    row_length: int,
    seed: int,
    legacy_split_offsets: bool = False,
) -> PackedIndex:
    """Index maps for documents ``[doc_start, doc_end)`` of a dataset whose pair lengths are ``lengths``.

    ``row_length`` is the row size in tokens (the dataset's ``seq_length``: model seq_length + 1).
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    nb_documents = int(doc_end) - int(doc_start)
    offset = document_offset(doc_start, legacy_split_offsets)
    if nb_documents <= 0:
        raise PackingError(f"document range [{doc_start}, {doc_end}) is empty; nothing to pack")
    if doc_start < 0 or offset + nb_documents > len(lengths):
        raise PackingError(f"document range [{doc_start}, {doc_end}) lies outside 0..{len(lengths)}")
    if row_length <= 0 or num_samples < 0:
        raise PackingError(f"row_length must be positive and num_samples >= 0 (got {row_length}, {num_samples})")
    used = lengths[offset:offset + nb_documents]
    if not (used <= row_length).any():
        raise PackingError(
            f"every one of the {nb_documents} pairs is longer than a row of {row_length} tokens;"
            " the fork would loop forever. Raise seq_length or shorten the pairs."
        )
    rng = np.random.RandomState(seed=seed)
    shuffles: list[np.ndarray] = []
    rows: list[np.ndarray] = []
    num_rows = 0
    skipped: list[SkippedPair] = []
    open_start, open_len = 0, 0  # the row still open: its first position in shuffle_idx and its tokens
    epoch = 0
    while num_rows <= num_samples:
        perm = epoch_permutation(rng, nb_documents)
        shuffles.append(perm)
        epoch_offset = epoch * nb_documents
        ids = perm + offset
        new_rows, open_start, open_len = _pack_epoch(
            lengths[ids], ids, epoch, epoch_offset, open_start, open_len, row_length, skipped
        )
        rows.append(new_rows)
        num_rows += len(new_rows)
        epoch += 1
    shuffle_idx = np.concatenate(shuffles) + offset
    batch_idx = np.concatenate(rows).astype(np.int64, copy=False).reshape(-1, 2)
    return PackedIndex(shuffle_idx.astype(np.int64, copy=False), batch_idx, epoch, skipped)


def _pack_epoch(
    epoch_lengths: np.ndarray,
    epoch_ids: np.ndarray,
    epoch: int,
    epoch_offset: int,
    open_start: int,
    open_len: int,
    row_length: int,
    skipped: list[SkippedPair],
) -> tuple[np.ndarray, int, int]:
    """Close every row this epoch allows; return them and the (start, tokens) of the row left open."""
    carry = open_start < epoch_offset  # the open row from the previous epoch becomes one pseudo-pair
    local = np.concatenate(([open_len], epoch_lengths)) if carry else epoch_lengths
    count = len(local)
    cumulative = np.zeros(count + 1, dtype=np.int64)
    np.cumsum(local, out=cumulative[1:])
    # ends[s]: the largest e with cumulative[e] - cumulative[s] <= row_length, i.e. where a row
    # starting at local position s closes (e == count: still open at the end of the epoch).
    ends = (np.searchsorted(cumulative, cumulative[:-1] + row_length, side="right") - 1).tolist()
    shift = 1 if carry else 0

    def global_position(local_position: int) -> int:
        if carry and local_position == 0:
            return open_start
        return epoch_offset + local_position - shift

    out: list[int] = []
    position = 0
    while position < count:
        end = ends[position]
        if end >= count:  # the row stays open into the next epoch
            return _as_rows(out), global_position(position), int(cumulative[count] - cumulative[position])
        if end > position:
            out.append(global_position(position))
            out.append(epoch_offset + end - shift)
            position = end
        else:  # a single pair longer than the row: the fork skips it
            k = position - shift
            skipped.append(SkippedPair(int(epoch_ids[k]), int(epoch_lengths[k]), epoch))
            position += 1
    return _as_rows(out), epoch_offset + count - shift, 0


def _as_rows(flat: list[int]) -> np.ndarray:
    return np.asarray(flat, dtype=np.int64).reshape(-1, 2)


def rows_per_epoch(lengths: np.ndarray, doc_start: int, doc_end: int, row_length: int, seed: int,
                   legacy_split_offsets: bool = False) -> tuple[int, int]:
    """Rows closed by the first epoch alone (its open tail not counted) and pairs skipped in it."""
    offset = document_offset(doc_start, legacy_split_offsets)
    nb_documents = int(doc_end) - int(doc_start)
    perm = epoch_permutation(np.random.RandomState(seed=seed), nb_documents) + offset
    skipped: list[SkippedPair] = []
    rows, _, _ = _pack_epoch(np.asarray(lengths, dtype=np.int64)[perm], perm, 0, 0, 0, 0,
                                    row_length, skipped)
    return len(rows), len(skipped)
