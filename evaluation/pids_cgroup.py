"""A pids cgroup per sandbox, the process-count limit that still holds when the harness runs as root.

The kernel never applies RLIMIT_NPROC to root's processes, and bubblewrap started by root maps the sandbox to
root, so for root the limit comes from the pids controller instead: cgroup v1 (``/sys/fs/cgroup/pids``) or a
v2 hierarchy whose own cgroup delegates ``pids``. For other users ``evaluation.sandbox`` sets RLIMIT_NPROC
inside the sandbox's user namespace (counted per namespace) and needs none of this. Library module, no
command line.
"""
from __future__ import annotations

import os
import secrets
import signal
import time
from pathlib import Path

V1_ROOT = Path("/sys/fs/cgroup/pids")
V2_ROOT = Path("/sys/fs/cgroup")


def _own_v2_cgroup() -> Path | None:
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                return V2_ROOT / line[3:].lstrip("/")
    except OSError:
        pass
    return None


def pids_parent() -> Path | None:
    """The writable folder where per-sandbox pids cgroups can be made, or None when there is none."""
    if (V1_ROOT / "cgroup.procs").exists() and os.access(V1_ROOT, os.W_OK):
        return V1_ROOT
    own = _own_v2_cgroup()
    if own is not None:
        try:
            delegated = "pids" in (own / "cgroup.subtree_control").read_text().split()
        except OSError:
            delegated = False
        if delegated and os.access(own, os.W_OK):
            return own
    return None


class PidsCgroup:
    """``with PidsCgroup(parent, max_pids) as group: group.adopt(pid)``; on exit every member is killed."""

    def __init__(self, parent: Path, max_pids: int) -> None:
        self.path = parent / f"codeft-sandbox-{os.getpid()}-{secrets.token_hex(6)}"  # unique across threads
        self.max_pids = max_pids

    def __enter__(self) -> "PidsCgroup":
        self.path.mkdir()
        (self.path / "pids.max").write_text(str(self.max_pids))
        return self

    def adopt(self, pid: int) -> None:
        """Move ``pid`` in; its later children are born inside and count against ``max_pids``."""
        (self.path / "cgroup.procs").write_text(str(pid))

    def members(self) -> list[int]:
        try:
            return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            return []

    def __exit__(self, *exc: object) -> None:
        deadline = time.monotonic() + 5.0
        while True:
            for pid in self.members():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                self.path.rmdir()  # fails with EBUSY until the killed members are reaped
                return
            except OSError:
                if time.monotonic() > deadline:
                    return  # an empty leftover folder costs nothing; never hang the harness on it
                time.sleep(0.01)


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (through /proc/PID/task/TID/children)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            tasks = list(Path(f"/proc/{current}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                todo.extend(int(c) for c in (task / "children").read_text().split())
            except (OSError, ValueError):
                pass
    return found
