"""Progress of a long read in bytes: a tqdm bar on a terminal, else a plain line every few seconds.

A run whose stderr goes to a log file (a batch job, ``2> log``) would otherwise stay silent for minutes;
the log gets one line per ``LOG_EVERY_S`` seconds instead of a bar's carriage returns::

    progress = byte_progress(total_bytes, label="preprocess", terminal=sys.stderr.isatty(), enabled=True)
    progress.update(n); ...; progress.close()
"""
from __future__ import annotations

import sys
import time
from typing import Any

LOG_EVERY_S = 5.0
MB = 1e6


class LogProgress:
    """``update``/``close`` like tqdm; writes ``LABEL: 12.0 MB of 86.0 MB (14%), 2.4 MB/s, 5 s`` lines."""

    def __init__(self, total: int | None, label: str, every_s: float | None = None) -> None:
        self.total, self.label = total, label
        self.every_s = LOG_EVERY_S if every_s is None else every_s
        self.done = 0
        self.started = self.last = time.monotonic()

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.last = now
            print(self.line(now), file=sys.stderr, flush=True)

    def line(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        of = f" of {self.total / MB:.1f} MB ({100 * self.done / self.total:.0f}%)" if self.total else ""
        return f"{self.label}: {self.done / MB:.1f} MB{of} read, {self.done / MB / elapsed:.1f} MB/s, {elapsed:.0f} s"

    def close(self) -> None:
        pass


class NoProgress:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def byte_progress(total: int | None, label: str, terminal: bool, enabled: bool = True) -> Any:
    """A tqdm bar on a terminal, :class:`LogProgress` otherwise, nothing when not ``enabled``."""
    if not enabled:
        return NoProgress()
    if not terminal:
        return LogProgress(total, label)
    from tqdm import tqdm  # only on a terminal

    return tqdm(total=total, unit="B", unit_scale=True, desc=label, file=sys.stderr)
