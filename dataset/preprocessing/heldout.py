"""Seeded choice of held-out validation records (used by ``dataset.preprocess``; not a command).

Why materialise validation at all: the fork's packed MTF dataset ignores the start of a ``0.95:1`` range, so
a range-based validation split reads the first documents of the training set (DESIGN.md 2.2). Instead the
chosen records are written to their own prefix and never to the training one.

Two rules, one per way of sizing the hold-out:

- ``--valid-fraction F``: a record is held out when a seeded hash of its line (keyed 64-bit BLAKE2b of the
  line's bytes as written in the file, without the newline; a parquet row is hashed as its compact JSON line,
  ``dataset.formats.parquet_records.record_line``) falls below ``F * 2**64``. The bytes, not the parsed record,
  decide: the same documents written with other JSON spacing or escapes (``json.dumps``'s ``": "``) are other
  lines and another split. This project's builders (``dataset.builders``) write ``record_line``'s form, so their
  jsonl and a parquet file of the same documents hold out the same records; other jsonl is hashed as it is
  (never re-serialised: that would move records of an existing file between training and validation).
  Each record is decided alone, from its own bytes: no count of the corpus first, and the same records are held
  out however the input is cut into shards (``dataset.preprocessing.shard_plan``), so a sharded run and a
  single-process run write the same files. The number held out is about ``F * n`` (binomial), not exactly. Identical lines share a hash, so a duplicated
  record is never in training and validation at once.
- ``--valid-count K`` (single-process only: it needs the count of all records first): exactly ``K`` records,
  ``numpy.random.RandomState(seed).choice(n, K, replace=False)`` over record ordinals ``0..n-1`` (non-blank
  lines, all input files in order).

The same inputs and seed give the same split under either rule.
"""
from __future__ import annotations

import hashlib

import numpy as np

HASH_RANGE = 1 << 64


class HeldOutError(ValueError):
    """A hold-out request that cannot be met (the message says which numbers and how to fix it)."""


def select_heldout(num_records: int, num_heldout: int, seed: int) -> np.ndarray:
    """Boolean mask over record ordinals, True for the ``num_heldout`` validation records (``--valid-count``)."""
    if num_heldout >= num_records:
        raise HeldOutError(f"holding out {num_heldout} of {num_records} records leaves none for training;"
                           " lower --valid-count or add data")
    mask = np.zeros(num_records, dtype=bool)
    chosen = np.random.RandomState(seed).choice(num_records, size=num_heldout, replace=False)
    mask[chosen] = True
    return mask


def record_hashes(lines: list[bytes], seed: int) -> np.ndarray:
    """The seeded 64-bit hash of each line (uint64), the quantity ``--valid-fraction`` thresholds."""
    key = str(seed).encode("ascii")  # any int: a negative seed is a different key, not an error
    digests = b"".join(hashlib.blake2b(line, digest_size=8, key=key).digest() for line in lines)
    return np.frombuffer(digests, dtype="<u8")


def fraction_threshold(fraction: float) -> np.uint64:
    """Hashes strictly below this are held out: ``fraction`` of the 64-bit range."""
    return np.uint64(min(int(fraction * HASH_RANGE), HASH_RANGE - 1))


def heldout_by_hash(lines: list[bytes], fraction: float, seed: int) -> np.ndarray:
    """Boolean per line: held out under the ``--valid-fraction`` rule."""
    return record_hashes(lines, seed) < fraction_threshold(fraction)


def check_heldout_result(fraction: float, train_documents: int, valid_documents: int) -> None:
    """A ``--valid-fraction`` run (or merge) must end with documents on both sides, or say how to fix it."""
    if fraction and not valid_documents:
        raise HeldOutError(f"--valid-fraction {fraction} held out none of the {train_documents} records written;"
                           " raise it, or use --valid-count for an exact number")
    if fraction and not train_documents:
        raise HeldOutError(f"--valid-fraction {fraction} held out all {valid_documents} records written, leaving"
                           " none for training; lower it or add data")
