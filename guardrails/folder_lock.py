"""One writer at a time in a folder that a command writes into over time (a training run's save folder).

``hold_run_folder(SAVE, kind, "training.save")`` checks that the folder is the command's own
(``guardrails.output_paths.check_run_folder``), creates it and its record when missing, then takes an exclusive
``flock`` on ``SAVE/.codeft-lock`` for as long as the block runs. A second run on the same folder (another
process, on this machine or another one sharing the file system where it honours ``flock``) is refused at once
with the process id of the holder, instead of both "succeeding" while one silently replaces the other's
checkpoints. The kernel drops the lock when its holder dies, ``kill -9`` included, so a crashed run never
blocks the next one. A folder the block created and left with nothing but its record is removed again.

Library module, no command line.

    with hold_run_folder(cfg.save, TRAINING_RUN, "training.save"):
        train(...)
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Iterator

from guardrails.output_paths import OutputRefused, check_run_folder, make_parents, own_run_folder, remove_if_empty
from guardrails.output_records import OutputKind

LOCK_NAME = ".codeft-lock"


@contextlib.contextmanager
def hold_run_folder(folder: str | os.PathLike, kind: OutputKind, flag: str, adopt: str = "") -> Iterator[str]:
    """Own and lock ``folder`` for the block; yields the nonce of its record (``adopt``: see ``check_run_folder``)."""
    folder = Path(folder)
    check_run_folder(folder, kind, flag, adopt)
    created = make_parents(folder / LOCK_NAME) if not folder.exists() else []
    nonce = own_run_folder(folder, kind)
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise OutputRefused(f"{flag} {folder}: another run (process {holder}) is writing into it now; wait for"
                                f" it to end, or choose another {flag}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield nonce
    finally:
        os.close(fd)  # releases the lock
        if created and {p.name for p in folder.iterdir()} <= {LOCK_NAME, kind.record}:
            for name in (LOCK_NAME, kind.record):
                (folder / name).unlink(missing_ok=True)
            remove_if_empty(created)
