"""Test helper: a small tmpfs that is full or read-only, to drive commands into ENOSPC and EROFS for real.

Root ignores file permissions (``chmod 555`` stops nobody when the tests run as root, as they do in CI), so a
read-only folder has to be a read-only mount, and a full disk a small one filled up. Both need ``mount``
(root, CAP_SYS_ADMIN): without it the test is skipped with the reason.

    with small_tmpfs(tmp_path / "full", state="full", keep={"notes.txt": b"mine"}) as out: ...
    with small_tmpfs(tmp_path / "ro", state="read-only", keep={...}) as out: ...
"""
from __future__ import annotations

import contextlib
import errno
import functools
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

SIZE = "2m"


def _mount(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True)


@functools.cache
def mount_skip_reason() -> str | None:
    """Why a tmpfs cannot be mounted here, or None (tried once: root in a container may still lack the right)."""
    if os.geteuid() != 0:
        return "needs root to mount a small tmpfs (root ignores permissions, so only a mount is read-only or full)"
    with tempfile.TemporaryDirectory() as probe:
        done = _mount("-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", probe)
        if done.returncode:
            return f"cannot mount a tmpfs: {done.stderr.strip()}"
        subprocess.run(["umount", probe], check=False)
    return None


def fill_up(folder: Path) -> None:
    """Write a filler file until the file system has no space left."""
    with open(folder / ".filler", "wb", buffering=0) as handle:
        block = b"\0" * 4096
        try:
            while True:
                handle.write(block)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise


@contextlib.contextmanager
def small_tmpfs(where: Path, state: str, keep: dict[str, bytes] | None = None) -> Iterator[Path]:
    """Mount a small tmpfs at ``where`` holding ``keep`` (name -> bytes), then make it ``full`` or ``read-only``."""
    reason = mount_skip_reason()
    if reason:
        pytest.skip(reason)
    where.mkdir(parents=True, exist_ok=True)
    done = _mount("-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(where))
    assert done.returncode == 0, done.stderr  # the probe mounted one, so this is a real failure
    try:
        for name, data in (keep or {}).items():
            (where / name).parent.mkdir(parents=True, exist_ok=True)
            (where / name).write_bytes(data)
        if state == "full":
            fill_up(where)
        elif state == "read-only":
            remount = _mount("-o", "remount,ro", str(where))
            assert remount.returncode == 0, remount.stderr
        else:
            raise ValueError(state)
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)
