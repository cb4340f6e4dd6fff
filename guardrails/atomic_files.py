"""Write a file so that it appears under its name only when complete: the one place that knows how.

The content goes to a hidden sibling ``.NAME.codeft.tmp-PID-RANDOM`` in the same folder (so the final rename
never crosses a file system), is flushed and fsynced, and is renamed over ``NAME`` with ``os.replace``.
On any exception, KeyboardInterrupt included, the temporary is removed (and the folders it created) and
``NAME`` is left as it was.
A killed process can leave a temporary behind, never a half-written ``NAME``; its name (the project's marker,
``guardrails.output_paths.temporary_name``) lets the next run remove it and never anything a user named alike.
The parent folder is created when missing.

    with atomic_write("out/data.jsonl") as handle:          # binary; mode="w" for text (UTF-8)
        handle.write(b"...")
    with atomic_path("out/model.pt") as tmp:                 # for writers that insist on a file name
        torch.save(obj, tmp)
    write_json_atomic("out/manifest.json", manifest, indent=2)   # json.dumps(...) + "\\n"

Library module (``guardrails``, the bottom layer every stage imports), no command line.
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator

from guardrails.output_paths import make_parents, note_complete, remove_if_empty, temporary_name


def temporary_sibling(path: Path, folder: bool = False) -> Path:
    """Create (exclusively, empty: a file of mode 0666 minus umask, or a ``folder``) and return a fresh temporary
    beside ``path``."""
    while True:
        tmp = temporary_name(path)
        try:  # exclusive: two writers of the same name (threads, a reused pid) never share a temporary
            if folder:
                tmp.mkdir()
            else:
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666))
        except FileExistsError:
            continue
        return tmp


def fsync_file(path: Path) -> None:
    """Flush ``path``'s data to disk (before a rename makes it the file its final name points at)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary file name to write (``torch.save``, ...); fsync and rename it onto ``path`` on success."""
    path = Path(path)
    created = make_parents(path)
    try:
        tmp = temporary_sibling(path)
    except BaseException:
        remove_if_empty(created)
        raise
    try:
        yield tmp
        fsync_file(tmp)  # the data must be on disk before the name points at it, or a crash can leave an empty file
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        remove_if_empty(created)  # a failed write leaves no empty folder behind either
        raise
    note_complete(path)


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", encoding: str = "utf-8") -> Iterator[IO[Any]]:
    """Yield an open handle on a temporary beside ``path``; flushed, fsynced and renamed onto it on success.

    ``mode`` is ``"wb"`` (bytes) or ``"w"`` (text in ``encoding``, newlines written as given).
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write mode must be 'wb' or 'w', got {mode!r}")
    text = {} if mode == "wb" else {"encoding": encoding, "newline": ""}
    with atomic_path(path) as tmp, open(tmp, mode, **text) as handle:
        yield handle  # closed (so flushed) before atomic_path fsyncs and renames it


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    with atomic_write(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically, exactly as given (no newline translation); returns ``path``."""
    return write_bytes_atomic(path, text.encode(encoding))


def write_json_atomic(path: str | os.PathLike, obj: Any, **dump_kwargs: Any) -> Path:
    """Write ``json.dumps(obj, **dump_kwargs)`` plus a final newline to ``path`` atomically (UTF-8)."""
    return write_text_atomic(path, json.dumps(obj, **dump_kwargs) + "\n")
