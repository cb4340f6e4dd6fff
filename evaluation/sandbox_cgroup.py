"""A cgroup per sandbox with a process limit (``pids.max``) and a memory limit that counts everything the sandbox holds.

    parents = find_parents()                     # where this process may make cgroups (pids, memory), or None
    with SandboxCgroup(parents, max_pids=19, memory_bytes=1 << 30) as group:
        group.adopt(pid)                         # before it runs untrusted code; its children are born inside
        group.oom_kills()                        # how many processes the memory limit killed
    # on leaving, every member is killed and the cgroup removed

The memory controller charges a cgroup for its processes' pages, tmpfs and shared-memory pages they write,
pipe buffers and other kernel memory: RLIMIT_AS and the tmpfs size see none of the last three. cgroup v1
(``memory.limit_in_bytes``, plus ``memory.memsw.limit_in_bytes`` where swap is accounted) and v2 (``memory.max``,
``memory.swap.max = 0``, ``memory.oom.group``) both work. Each sandbox's cgroup is made inside this process's
own cgroup (v1), or inside the v2 cgroup that delegates ``pids`` and ``memory`` (this process's, or its parent's
when this process sits in a leaf below it), so the sandboxes stay inside whatever limits the harness itself runs
under. Where none is writable (an ordinary user on a shared host), ``find_parents`` says so and the sandbox
relies on rlimits and seccomp (see ``evaluation.sandbox``). Library module, no command line.
"""
from __future__ import annotations

import os
import secrets
import signal
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CgroupParents:
    """Folders in which a per-sandbox cgroup can be made, one per controller (the same folder on cgroup v2)."""

    pids: Path | None
    memory: Path | None
    version: str  # "v1", "v2" or "" when neither is writable

    def describe(self) -> str:
        found = [f"{name} ({path})" for name, path in (("pids", self.pids), ("memory", self.memory)) if path]
        return f"cgroup {self.version}: " + ", ".join(found) if found else "no writable cgroup"


def _v1_own_paths(self_cgroup: str) -> dict[str, str]:
    own = {}
    for line in self_cgroup.splitlines():
        number, controllers, path = line.split(":", 2)
        if number != "0":
            for controller in controllers.split(","):
                own[controller] = path
    return own


def _mounts(mountinfo: str) -> list[tuple[str, str, str, set[str]]]:
    """(root in the hierarchy, mount point, filesystem type, super options) of each mount."""
    found = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        after = line.split(" - ", 1)[1].split()
        if len(after) >= 3:
            found.append((fields[3], fields[4], after[0], set(after[2].split(","))))
    return found


def _inside(mount_root: str, mount_point: str, own: str) -> Path | None:
    """The folder of cgroup ``own`` under a mount of the hierarchy's ``mount_root`` (None: not visible there)."""
    if mount_root != "/" and own != mount_root and not own.startswith(mount_root.rstrip("/") + "/"):
        return None
    return Path(mount_point) / own[len(mount_root.rstrip("/")):].lstrip("/")


def _writable(folder: Path) -> bool:
    return (folder / "cgroup.procs").exists() and os.access(folder, os.W_OK) and os.access(
        folder / "cgroup.procs", os.W_OK)


def find_parents(mountinfo: str | None = None, self_cgroup: str | None = None) -> CgroupParents:
    """Where per-sandbox cgroups can be made (the texts default to /proc/self/mountinfo and /proc/self/cgroup)."""
    try:
        mountinfo = Path("/proc/self/mountinfo").read_text() if mountinfo is None else mountinfo
        self_cgroup = Path("/proc/self/cgroup").read_text() if self_cgroup is None else self_cgroup
    except OSError:
        return CgroupParents(None, None, "")
    mounts, own_v1 = _mounts(mountinfo), _v1_own_paths(self_cgroup)
    v1: dict[str, Path] = {}
    for root, point, kind, options in mounts:
        for controller in ("pids", "memory"):
            if kind == "cgroup" and controller in options and controller in own_v1 and controller not in v1:
                folder = _inside(root, point, own_v1[controller])
                if folder is not None and _writable(folder):
                    v1[controller] = folder
    if v1:
        return CgroupParents(v1.get("pids"), v1.get("memory"), "v1")
    own_v2 = next((line[3:] for line in self_cgroup.splitlines() if line.startswith("0::")), None)
    for root, point, kind, _ in mounts:
        own = _inside(root, point, own_v2) if kind == "cgroup2" and own_v2 is not None else None
        for folder in (own, own.parent) if own is not None else ():
            try:
                delegated = set((folder / "cgroup.subtree_control").read_text().split())
            except OSError:
                continue
            if {"pids", "memory"} <= delegated and _writable(folder):
                return CgroupParents(folder, folder, "v2")
    return CgroupParents(None, None, "")


class SandboxCgroup:
    """``with SandboxCgroup(parents, max_pids, memory_bytes) as group: group.adopt(pid)``; members die on exit."""

    def __init__(self, parents: CgroupParents, max_pids: int, memory_bytes: int) -> None:
        name = f"codeft-sandbox-{os.getpid()}-{secrets.token_hex(6)}"  # unique across threads and processes
        self.parents, self.max_pids, self.memory_bytes = parents, max_pids, memory_bytes
        self.folders = sorted({parent / name for parent in (parents.pids, parents.memory) if parent is not None})
        self.made: list[Path] = []

    def _limit(self, folder: Path) -> None:
        v2 = self.parents.version == "v2"
        if self.parents.pids is not None and folder.parent == self.parents.pids:
            (folder / "pids.max").write_text(str(self.max_pids))
        if self.parents.memory is not None and folder.parent == self.parents.memory:
            (folder / ("memory.max" if v2 else "memory.limit_in_bytes")).write_text(str(self.memory_bytes))
            for extra, value in (("memory.memsw.limit_in_bytes", self.memory_bytes), ("memory.swap.max", 0),
                                 ("memory.oom.group", 1)):
                if (folder / extra).exists():  # swap counted too (v1), no swap (v2), kill the whole sandbox (v2)
                    (folder / extra).write_text(str(value))

    def __enter__(self) -> "SandboxCgroup":
        try:
            for folder in self.folders:
                folder.mkdir()
                self.made.append(folder)
                self._limit(folder)
        except BaseException:
            self.__exit__()
            raise
        return self

    def adopt(self, pid: int) -> None:
        """Move ``pid`` in; its later children are born inside and count against the limits."""
        for folder in self.made:
            (folder / "cgroup.procs").write_text(str(pid))

    def oom_kills(self) -> int:
        """Processes killed because the sandbox's memory reached ``memory_bytes``."""
        for folder in self.made:
            for name in ("memory.events", "memory.oom_control"):  # v2, v1
                try:
                    lines = (folder / name).read_text().splitlines()
                except OSError:
                    continue
                for line in lines:
                    if line.startswith("oom_kill "):
                        return int(line.split()[1])
        return 0

    def members(self) -> list[int]:
        pids: set[int] = set()
        for folder in self.made:
            try:
                pids.update(int(p) for p in (folder / "cgroup.procs").read_text().split())
            except (OSError, ValueError):
                pass
        return sorted(pids)

    def __exit__(self, *exc: object) -> None:
        deadline = time.monotonic() + 5.0
        while self.made:
            for pid in self.members():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            for folder in list(self.made):
                try:
                    folder.rmdir()  # fails with EBUSY until the killed members are reaped
                    self.made.remove(folder)
                except OSError:
                    pass
            if self.made and time.monotonic() > deadline:
                return  # an empty leftover folder costs nothing; never hang the harness on it
            if self.made:
                time.sleep(0.01)
