"""Output folders that appear complete or not at all (every converter's output goes through here).

``atomic_output_dir(OUT)`` yields an empty sibling ``.OUT.tmp-PID`` to fill. When the block ends normally
it replaces ``OUT``: an existing ``OUT`` is first renamed aside to ``.OUT.old-PID`` and deleted only once
the new folder is in place, so a reader never sees a half-written folder and a failure never loses the old
one. When the block raises, the temporary folder is removed, so are the parent folders it had to create, and
``OUT`` is left as it was. The temporary names are hidden because they sit beside finished folders
(``iter_*`` in a checkpoint root) and must not be mistaken for one. Whether ``OUT`` may be replaced at all
is the caller's question (``guardrails.output_paths.claim_folder``); leftovers of killed runs (``.OUT.tmp-PID``,
``.OUT.old-PID`` of dead processes) are removed here.

Library module, no command line.

    with atomic_output_dir("out/hf") as tmp:
        (tmp / "config.json").write_text(...)
"""
from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Iterator

from guardrails.output_paths import make_parents, note_complete, remove_if_empty, remove_stale_leftovers


def _sibling(out: Path, kind: str) -> Path:
    """The hidden ``.OUT.{kind}-PID`` beside ``out`` (``kind`` is ``tmp`` or ``old``)."""
    return out.with_name(f".{out.name}.{kind}-{os.getpid()}")


@contextlib.contextmanager
def atomic_output_dir(out: str | Path) -> Iterator[Path]:
    """Yield an empty ``.OUT.tmp-PID``; on success it replaces ``OUT``, on error it is removed."""
    out = Path(out).resolve()
    tmp = _sibling(out, "tmp")
    shutil.rmtree(tmp, ignore_errors=True)  # left by an earlier run of the same pid that was killed
    remove_stale_leftovers(out)
    created = make_parents(tmp)
    try:
        tmp.mkdir()
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        remove_if_empty(created)
        raise
    if out.exists():
        old = _sibling(out, "old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
        os.replace(tmp, out)
        note_complete(out)
        shutil.rmtree(old, ignore_errors=True)  # an interrupt here leaves .OUT.old-PID: the next run removes it
    else:
        os.replace(tmp, out)
        note_complete(out)
