"""Output folders that appear complete or not at all (every converter's output goes through here).

``atomic_output_dir(OUT)`` yields an empty hidden sibling ``.OUT.codeft.tmp-PID-HEX`` to fill. When the block ends
normally it replaces ``OUT``: an existing ``OUT`` is first renamed aside to ``.OUT.codeft.old-PID-HEX`` and deleted
only once the new folder is in place, so a reader never sees a half-written folder and a failure never loses the
old one. When the block raises, the temporary folder is removed, so are the parent folders it had to create, and
``OUT`` is left as it was. The temporary names are hidden because they sit beside finished folders
(``iter_*`` in a checkpoint root) and must not be mistaken for one. Whether ``OUT`` may be replaced at all
is the caller's question (``guardrails.output_paths.claim_folder``); leftovers of killed runs (the names above,
of dead processes) are removed here.

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

from guardrails.atomic_files import temporary_sibling
from guardrails.output_paths import (
    make_parents, note_complete, remove_if_empty, remove_stale_leftovers, temporary_name,
)


@contextlib.contextmanager
def atomic_output_dir(out: str | Path) -> Iterator[Path]:
    """Yield an empty ``.OUT.codeft.tmp-PID-HEX``; on success it replaces ``OUT``, on error it is removed."""
    out = Path(out).resolve()
    remove_stale_leftovers(out)
    created = make_parents(out)
    try:
        tmp = temporary_sibling(out, folder=True)
    except BaseException:
        remove_if_empty(created)
        raise
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        remove_if_empty(created)
        raise
    if out.exists() or out.is_symlink():
        old = temporary_name(out, "old")
        os.replace(out, old)
        os.replace(tmp, out)
        note_complete(out)
        shutil.rmtree(old, ignore_errors=True)  # an interrupt here leaves .OUT.codeft.old-PID-HEX: the next run removes it
    else:
        os.replace(tmp, out)
        note_complete(out)
