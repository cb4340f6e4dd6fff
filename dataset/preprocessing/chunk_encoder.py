"""What one preprocess worker process does with a chunk of jsonl lines: validate, then tokenize in one batch.

Used by ``dataset.preprocess`` through a process pool (not a command). Each worker holds its own
single-threaded tokenizer: on a shared machine independent processes keep every core busy better than one
Rayon pool whose batches wait for their slowest thread. The result carries token ids as numpy arrays (cheap
to send back) and the chunk's issues; the parent decides whether an issue stops the run.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
from dataclasses import dataclass

import numpy as np

from dataset.preprocessing.heldout import heldout_by_hash
from dataset.formats.jsonl_records import LineChunk, RecordIssue, parse_chunk
from dataset.formats.text_tokenizer import EncodedBatch, TextTokenizer

_tokenizer: TextTokenizer | None = None


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent: int) -> None:
    """Have the kernel send this process SIGKILL when its parent dies (``kill -9`` included), so a killed
    preprocess never leaves workers waiting forever on a queue nobody writes. Linux only (elsewhere the pool's
    own shutdown is all there is)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the request: nobody would send the signal
        os._exit(1)


def init_worker(tokenizer: TextTokenizer, parent: int | None = None) -> None:
    """Process-pool initializer: one single-threaded tokenizer per process; Ctrl-C and SIGTERM are the
    parent's to handle (it stops the pool), and the worker dies with its parent (``die_with_parent``).

    The pool forks, so each worker uses its copy of the parent's loaded tokenizer as is (no second load).
    """
    global _tokenizer
    if parent is not None:
        die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler (guardrails.command_errors)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    os.environ["RAYON_NUM_THREADS"] = "1"
    _tokenizer = tokenizer


@dataclass(frozen=True)
class EncodedChunk:
    """A chunk's records: counts, issues, and the ids of the valid records' fields (one or two).

    ``local[j]`` is the index, among the chunk's records, of valid record ``j``; its inputs are text ``j`` and
    its targets (when there are two keys) text ``len(local) + j`` of ``encoded``. ``heldout[j]`` (with
    ``--valid-fraction``) says whether ``dataset.preprocessing.heldout``'s hash rule holds valid record ``j`` out.
    """

    path: str
    num_records: int
    blank_lines: int
    issues: list[tuple[int, RecordIssue]]
    local: np.ndarray
    lines: np.ndarray
    encoded: EncodedBatch
    heldout: np.ndarray | None = None


def encode_chunk(chunk: LineChunk, keys: tuple[str, ...], max_line_bytes: int,
                 heldout_rule: tuple[float, int] | None = None) -> EncodedChunk:
    """Parse and tokenize one chunk (runs in a worker after :func:`init_worker`).

    ``heldout_rule`` is ``(valid_fraction, valid_seed)`` when records are held out by hash.
    """
    if _tokenizer is None:
        raise RuntimeError("encode_chunk() in a process where init_worker() did not run")
    parsed = parse_chunk(chunk, keys, max_line_bytes)
    encoded = _tokenizer.encode_batch(parsed.inputs + parsed.targets)
    heldout = None
    if heldout_rule is not None:  # only the valid records are written, so only their lines are hashed
        lines = chunk.data.split(b"\n")
        heldout = heldout_by_hash([lines[number - chunk.first_line] for number in parsed.lines], *heldout_rule)
    return EncodedChunk(chunk.path, parsed.num_records, parsed.blank_lines, parsed.issues,
                        np.asarray(parsed.local, dtype=np.int64), np.asarray(parsed.lines, dtype=np.int64), encoded,
                        heldout)
