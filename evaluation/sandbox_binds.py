"""What the sandbox sees of the host: the bubblewrap arguments for its file system, planned from a probe of the host.

    layout = read_host_layout()                                   # which of /bin, /lib*, /etc/... exist, and how
    bwrap_mounts(layout, extra_ro=["/opt/go"], tmpfs_bytes=64 << 20, proc=False)   # pure: a list of bwrap args

Bound, read-only: ``/usr``; ``/bin``, ``/sbin``, ``/lib``, ``/lib32``, ``/lib64``, ``/libx32`` (as the symlinks
they are on merged-/usr systems, else bound); a minimal ``/etc`` of the dynamic loader's cache and
configuration, ``alternatives``, ``localtime`` and ``nsswitch.conf``, with a ``passwd`` and ``group`` written
for the sandbox (``root`` and ``nobody``: no host accounts, no ``shadow``, ``gshadow``, ``sudoers`` or ssh keys);
the interpreter's own folders when they lie outside ``/usr``, and what the caller names. Nothing else: no
``/root``, ``/home``, ``/var``, ``/run``, ``/srv``, ``/mnt``, ``/media``, ``/opt``, ``/sys``, no project checkout,
hence no host Unix socket. ``/dev`` is bubblewrap's minimal one, read-only; ``/proc`` is absent unless asked
for (a toolchain that reads ``/proc/self/exe``), then it is the sandbox's own, whose ``/proc/sys`` the
unprivileged sandbox user cannot write. ``/tmp`` is a private size-limited tmpfs holding the program's working
folder. Library module, no command line.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

WORK_DIR = "/tmp/program"  # the program's working folder and HOME, on the sandbox's tmpfs
TOP_LEVEL = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_ENTRIES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime", "nsswitch.conf")
SYSTEM = ("/usr", *TOP_LEVEL, "/etc", "/dev", "/proc", "/tmp")
SANDBOX_UID = 65534
PASSWD = f"root:x:0:0:root:/root:/bin/sh\nnobody:x:{SANDBOX_UID}:{SANDBOX_UID}:nobody:{WORK_DIR}:/bin/sh\n"
GROUP = f"root:x:0:\nnogroup:x:{SANDBOX_UID}:\n"
ACCOUNT_FILES = {"/etc/passwd": PASSWD.encode(), "/etc/group": GROUP.encode()}


@dataclass(frozen=True)
class HostLayout:
    """Each entry: (path, its symlink target, or None when it is a real folder or file)."""

    top_level: tuple[tuple[str, str | None], ...]
    etc: tuple[tuple[str, str | None], ...]


def _entry(path: str) -> tuple[str, str | None] | None:
    if os.path.islink(path):
        return path, os.readlink(path)
    return (path, None) if os.path.exists(path) else None


def read_host_layout() -> HostLayout:
    top = [e for e in map(_entry, TOP_LEVEL) if e is not None]
    etc = [e for e in (_entry(f"/etc/{name}") for name in ETC_ENTRIES) if e is not None]
    return HostLayout(tuple(top), tuple(etc))


def outermost(paths: Sequence[str], covered: Sequence[str] = ("/usr",)) -> list[str]:
    """The given paths without those inside ``covered`` or inside another one of them, outermost first."""
    def within(path: str, folder: str) -> bool:
        return path == folder or path.startswith(folder.rstrip("/") + "/")

    normal = sorted({os.path.normpath(p) for p in paths})
    kept: list[str] = []
    for path in normal:
        if not any(within(path, c) for c in covered) and not any(within(path, k) for k in kept):
            kept.append(path)
    return kept


def bwrap_mounts(layout: HostLayout, extra_ro: Sequence[str], tmpfs_bytes: int, proc: bool) -> list[str]:
    """The file-system part of the bwrap command line (the account files are added by the caller as --file)."""
    args = ["--ro-bind", "/usr", "/usr"]
    for path, target in layout.top_level:
        args += ["--symlink", target, path] if target is not None else ["--ro-bind", path, path]
    args += ["--dir", "/etc"]
    for path, target in layout.etc:
        args += ["--symlink", target, path] if target is not None else ["--ro-bind", path, path]
    args += ["--dev", "/dev", "--remount-ro", "/dev"]
    if proc:
        args += ["--proc", "/proc"]
    args += ["--size", str(tmpfs_bytes), "--tmpfs", "/tmp"]
    for path in outermost(extra_ro):  # after /tmp's tmpfs, so that folders under /tmp are bound back
        args += ["--ro-bind", path, path]
    return args + ["--dir", WORK_DIR]
