"""Sandboxes started ahead of their programs, so that one program's start-up overlaps another's run.

    with WarmPool(start, end, depth=4) as pool:   # start() -> a started sandbox; end(it) kills an unused one
        started = pool.take()                     # one started earlier (or now), waiting for its program

Starting a sandbox is mostly waiting, not computing: bubblewrap's namespaces, the cgroup migration (an RCU grace
period), the interpreter's start, the handshakes between processes. ``depth`` sandboxes start at once on their
own threads (each sandbox dies with the thread that started it, so these threads live as long as the pool);
``take`` hands out the oldest and starts a replacement. Every sandbox still runs exactly one program, and no
program starts before ``take``: only their start-ups run ahead. Leaving the ``with`` block ends the sandboxes
nobody took. Library module, no command line.
"""
from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class WarmPool(Generic[T]):
    def __init__(self, start: Callable[[], T], end: Callable[[T], None], depth: int) -> None:
        self._start, self._end, self.depth = start, end, max(1, depth)
        self._lock = threading.Lock()
        self._ahead: deque[Future[T]] = deque()
        self._executor = ThreadPoolExecutor(max_workers=self.depth, thread_name_prefix="sandbox-start")

    def take(self) -> T:
        with self._lock:
            while len(self._ahead) <= self.depth:  # the one taken now, and ``depth`` more on their way
                self._ahead.append(self._executor.submit(self._start))
            oldest = self._ahead.popleft()
        return oldest.result()

    def __enter__(self) -> "WarmPool[T]":
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            left, self._ahead = list(self._ahead), deque()
        for future in left:
            try:
                self._end(future.result())
            except Exception:  # a start that failed has nothing left to end
                pass
        self._executor.shutdown(wait=True)
