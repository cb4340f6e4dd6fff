"""The one place the toolkit runs ``git``: argv lists built by a pure function, never a shell.

    out = run_git(Path("some/repo"), ["log", "--format=%H", "-n", "1"])

Every call reads a *local* repository. The argv switches off the repository-configurable hooks that
read-only commands could otherwise trigger (``core.fsmonitor`` runs a program; a pager waits for a
terminal), so reading an untrusted repository's history runs no code from it.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Sequence

# Settings forced on every call: no fsmonitor program, no pager, no external diff or text conversion.
_SAFE_CONFIG = ("core.fsmonitor=false", "core.pager=cat", "diff.external=", "log.showSignature=false")


class GitError(RuntimeError):
    """git failed or is missing; the message holds the command and git's own explanation."""


def git_argv(repo: str | os.PathLike, args: Sequence[str]) -> list[str]:
    """The full argv for ``git ARGS`` run against ``repo`` (pure; the tests check it)."""
    argv = ["git", "-C", os.fspath(repo), "--no-pager"]
    for setting in _SAFE_CONFIG:
        argv += ["-c", setting]
    return argv + list(args)


def run_git(repo: str | os.PathLike, args: Sequence[str], stdin: bytes | None = None) -> bytes:
    """Run ``git ARGS`` in ``repo`` and return its stdout; raise :class:`GitError` on failure."""
    argv = git_argv(repo, args)
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", LC_ALL="C")
    try:
        done = subprocess.run(argv, input=stdin, capture_output=True, check=False, env=env)
    except FileNotFoundError as exc:
        raise GitError("git is not installed or not on PATH; install git to read a repository's history") from exc
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip() or f"exit status {done.returncode}"
        raise GitError(f"{Path(repo)}: `git {' '.join(args[:3])}` failed: {message}")
    return done.stdout
