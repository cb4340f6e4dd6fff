"""Several files of one output and their record, put in place together or not at all.

A file output with companions (a tokenizer.json with its two config files, a report with its plot) cannot be a
folder of its own, so ``guardrails.atomic_folder`` does not serve; and writing the files one at a time, then
their record, leaves a run interrupted between two writes with new files beside an old record, which no later run
may replace ("changed since ... was written"). Here every file goes to a hidden temporary beside its name first
(``guardrails.atomic_files``); when the block ends normally the temporaries are made durable, the record
(``PATH.manifest.json``, ``guardrails.output_records``) is written to a temporary of its own from their
fingerprints, and only then are all of them renamed into place, record last, with Ctrl-C and SIGTERM held back
(``signals_deferred``) for those few renames. When the block raises, every temporary is removed and nothing at
the final names has changed. Only a SIGKILL during the renames (microseconds, no I/O but the renames) can split
the set; what the claim then refuses is named in its message.

Library module, no command line.

    with atomic_file_set("out/tokenizer.json", TOKENIZER_FILES) as files:
        files.temporary("out/tokenizer.json").write_text(...)
        files.temporary("out/tokenizer_config.json").write_text(...)
        files.remove("out/old_plot.png")   # an earlier output's file (proven by the caller's claim) goes with them
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Iterator, Mapping

from guardrails.atomic_files import temporary_sibling
from guardrails.command_errors import signals_deferred
from guardrails.output_paths import make_parents, note_complete, remove_if_empty
from guardrails.output_records import RECORD_KEY, OutputKind, record_section, sidecar_record


class FileSet:
    """The temporaries of one set of files: ``temporary(final)`` gives the file to write for ``final``."""

    def __init__(self) -> None:
        self.temporaries: dict[Path, Path] = {}  # final name -> its temporary, in the order asked
        self.removed: list[Path] = []
        self.created: list[Path] = []  # folders made for the set, removed again when it fails

    def temporary(self, final: str | os.PathLike) -> Path:
        """An empty temporary beside ``final`` (the same one when asked again), renamed onto it at the end."""
        final = Path(final)
        if final not in self.temporaries:
            self.created += make_parents(final)
            self.temporaries[final] = temporary_sibling(final)
        return self.temporaries[final]

    def remove(self, final: str | os.PathLike) -> None:
        """Delete ``final`` when the set is put in place (an earlier output's file that this one has not)."""
        self.removed.append(Path(final))

    def discard(self) -> None:
        for tmp in self.temporaries.values():
            tmp.unlink(missing_ok=True)
        remove_if_empty(self.created)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_file_set(output: str | os.PathLike, kind: OutputKind,
                    facts: Mapping[str, Any] | None = None) -> Iterator[FileSet]:
    """Yield a ``FileSet``; on success its files and their record ``OUTPUT.manifest.json`` (naming ``output``
    and every file written beside it) appear together. The caller has claimed each name (``claim_file``)."""
    output = Path(output)
    record, files = sidecar_record(output), FileSet()
    try:
        yield files
        for tmp in files.temporaries.values():
            _fsync(tmp)  # the data must be on disk before a name points at it
        section = record_section(kind, output.parent, list(files.temporaries), read_from=files.temporaries)
        record_tmp = files.temporary(record)
        record_tmp.write_text(json.dumps({"output": output.name, **(facts or {}), RECORD_KEY: section},
                                         indent=2) + "\n", encoding="utf-8")
        _fsync(record_tmp)
    except BaseException:
        files.discard()
        raise
    with signals_deferred():  # the renames are one step: an interrupt acts once they are all done
        try:
            for final in files.removed:  # first: the new record must never sit beside a file it does not list
                final.unlink(missing_ok=True)
            for final, tmp in files.temporaries.items():  # the record was asked for last: it goes in last
                os.replace(tmp, final)
        finally:
            files.discard()  # only what a failed rename left; the renamed temporaries are gone already
        for final in files.temporaries:
            note_complete(final)
