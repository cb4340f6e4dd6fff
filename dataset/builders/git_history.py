"""Read a local repository's history for ``dataset.commits_to_jsonl``: commits, changed files, blob bytes.

Three git calls, all through :func:`dataset.builders.git_runner.run_git`:

- ``git log -z --raw -M`` once: every commit with its parents, subject and per-file changes
  (status letter, modes, old/new blob ids, paths), in the order git walks them;
- ``git cat-file --batch-check``: blob sizes, so oversized files are skipped without reading them;
- ``git cat-file --batch``: blob contents, in chunks.

Walk modes: ``first-parent`` (default) follows the mainline only (``git log --first-parent``): each of
its commits is a deliberate change to the branch, and a merged side branch is represented by its merge
(which the builder skips) rather than by its work-in-progress commits. ``all`` walks every commit
reachable from the revision (side-branch commits included). Merge commits are listed in both modes
(the builder counts and skips them) but carry no file changes.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Iterable, Literal

from dataset.builders.git_runner import GitError, run_git

WalkMode = Literal["first-parent", "all"]
_HEADER = "\x01"  # starts each commit in our --format; never the first byte of a raw diff entry


@dataclass(frozen=True)
class FileChange:
    """One line of ``git log --raw``: how a path changed in a commit."""

    status: str  # A M D R C T U X (rename/copy letters without their score)
    old_mode: str
    new_mode: str
    old_blob: str
    new_blob: str
    old_path: str
    new_path: str


@dataclass(frozen=True)
class Commit:
    sha: str
    parents: tuple[str, ...]
    subject: str
    changes: tuple[FileChange, ...] = field(default=())

    @property
    def is_merge(self) -> bool:
        return len(self.parents) > 1


def log_argv(revision: str, walk: WalkMode) -> list[str]:
    """The ``git log`` arguments whose output :func:`parse_log` reads (pure)."""
    args = ["log", "-z", "--raw", "--no-abbrev", "-M", "--diff-merges=off", "--encoding=UTF-8",
            f"--format={_HEADER}%H %P%x00%s"]
    if walk == "first-parent":
        args.append("--first-parent")
    return args + [revision, "--"]


def read_commits(repo: str | os.PathLike, revision: str = "HEAD", walk: WalkMode = "first-parent") -> list[Commit]:
    """Every commit reachable from ``revision`` (newest first), with its file changes."""
    return parse_log(run_git(repo, log_argv(revision, walk)))


def parse_log(raw: bytes) -> list[Commit]:
    """Parse the NUL-separated output of :func:`log_argv`'s command.

    Tokens come in a fixed order (header, subject, then per change: the raw entry and one or two paths),
    so a path or subject is never mistaken for a header, whatever bytes it holds.
    """
    tokens = raw.split(b"\x00")
    commits: list[Commit] = []
    i = 0
    while i < len(tokens):
        token = tokens[i].lstrip(b"\n").decode("utf-8", "surrogateescape")
        if token == "":
            i += 1
            continue
        if not token.startswith(_HEADER):
            raise GitError(f"unexpected `git log` output near {token[:60]!r}; is this git too old (needs 2.31+)?")
        sha, *parents = token[1:].split(" ")
        subject = tokens[i + 1].decode("utf-8", "replace") if i + 1 < len(tokens) else ""
        i += 2
        changes = []
        while i < len(tokens) and tokens[i].lstrip(b"\n").startswith(b":"):
            meta = tokens[i].lstrip(b"\n")[1:].decode("ascii").split(" ")
            old_mode, new_mode, old_blob, new_blob, status = meta[0], meta[1], meta[2], meta[3], meta[4]
            letter = status[0]
            paths = 2 if letter in "RC" else 1
            names = [p.decode("utf-8", "surrogateescape") for p in tokens[i + 1: i + 1 + paths]]
            changes.append(FileChange(letter, old_mode, new_mode, old_blob, new_blob, names[0], names[-1]))
            i += 1 + paths
        commits.append(Commit(sha, tuple(p for p in parents if p), subject, tuple(changes)))
    return commits


def _cat_file(repo: str | os.PathLike, mode: str, blobs: Iterable[str]) -> bytes:
    """``git cat-file MODE`` fed each distinct blob id once (empty output for no ids, without running git)."""
    wanted = sorted(set(blobs))
    return run_git(repo, ["cat-file", mode], stdin=("\n".join(wanted) + "\n").encode()) if wanted else b""


def blob_sizes(repo: str | os.PathLike, blobs: Iterable[str]) -> dict[str, int]:
    """Size in bytes of each blob id (``git cat-file --batch-check``), without reading the contents."""
    out = _cat_file(repo, "--batch-check", blobs)
    sizes: dict[str, int] = {}
    for line in out.decode("ascii").splitlines():
        parts = line.split(" ")
        if len(parts) != 3:
            raise GitError(f"{repo}: blob {parts[0]} is missing from the object store ({line!r})")
        sizes[parts[0]] = int(parts[2])
    return sizes


def read_blobs(repo: str | os.PathLike, blobs: Iterable[str]) -> dict[str, bytes]:
    """Contents of each blob id, in one ``git cat-file --batch`` call."""
    out = _cat_file(repo, "--batch", blobs)
    contents: dict[str, bytes] = {}
    pos = 0
    while pos < len(out):
        end = out.index(b"\n", pos)
        parts = out[pos:end].decode("ascii").split(" ")
        if len(parts) != 3:
            raise GitError(f"{repo}: blob {parts[0]} is missing from the object store")
        size = int(parts[2])
        contents[parts[0]] = out[end + 1: end + 1 + size]
        pos = end + 1 + size + 1  # the object is followed by a newline
    return contents
