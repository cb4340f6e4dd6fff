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

A single file output is a set of one: ``file_with_record`` (a handle to stream into, as ``atomic_write``) and
``write_json_with_record`` / ``write_text_with_record`` put the file and its record in place together, so no
command writes a file and then, in a second step an interrupt can fall between, its record.

Library module, no command line.

    with atomic_file_set("out/tokenizer.json", TOKENIZER_FILES) as files:
        files.temporary("out/tokenizer.json").write_text(...)
        files.temporary("out/tokenizer_config.json").write_text(...)
        files.remove("out/old_plot.png")   # an earlier output's file (proven by the caller's claim) goes with them
        files.facts["records"] = 12        # what is known only once the files are written goes into the record
    write_json_with_record("out/plan.json", SPLIT_PLAN, plan, indent=1)
    with file_with_record("out/samples.npy", SAMPLES) as handle:   # binary, streamed into its temporary
        np.save(handle, rows)
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import IO, Any, Iterator, Mapping

from guardrails.atomic_files import fsync_file, temporary_sibling
from guardrails.command_errors import signals_deferred
from guardrails.output_paths import make_parents, note_complete, remove_if_empty
from guardrails.output_records import RECORD_KEY, OutputKind, record_section, sidecar_record


class FileSet:
    """The temporaries of one set of files: ``temporary(final)`` gives the file to write for ``final``."""

    def __init__(self, facts: Mapping[str, Any] | None = None) -> None:
        self.facts: dict[str, Any] = dict(facts or {})  # the record's keys beside its section; added to until the end
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


@contextlib.contextmanager
def atomic_file_set(output: str | os.PathLike, kind: OutputKind, facts: Mapping[str, Any] | None = None,
                    record: str | os.PathLike | None = None) -> Iterator[FileSet]:
    """Yield a ``FileSet``; on success its files and their record ``OUTPUT.manifest.json`` (naming ``output``
    and every file written beside it) appear together. ``record``: the record's path where it is another (a
    cache's key file); it then does not name ``output``. The caller has claimed each name (``claim_file``)."""
    output = Path(output)
    head = {"output": output.name} if record is None else {}
    record, files = Path(record) if record is not None else sidecar_record(output), FileSet(facts)
    try:
        yield files
        for tmp in files.temporaries.values():
            fsync_file(tmp)  # the data must be on disk before a name points at it
        section = record_section(kind, output.parent, list(files.temporaries), read_from=files.temporaries)
        record_tmp = files.temporary(record)
        record_tmp.write_text(json.dumps({**head, **files.facts, RECORD_KEY: section},
                                         indent=2) + "\n", encoding="utf-8")
        fsync_file(record_tmp)
    except BaseException:
        files.discard()
        raise
    with signals_deferred():  # the renames are one step: an interrupt acts once they are all done
        try:
            for final in files.removed:  # first: the new record must never sit beside a file it does not list
                final.unlink(missing_ok=True)
            for final, tmp in files.temporaries.items():  # the record was asked for last: it goes in last
                os.replace(tmp, final)
            for final in files.temporaries:  # before a held interrupt acts: its message says "complete"
                note_complete(final)
        finally:
            files.discard()  # only what a failed rename left; the renamed temporaries are gone already


@contextlib.contextmanager
def file_with_record(path: str | os.PathLike, kind: OutputKind,
                     facts: Mapping[str, Any] | None = None) -> Iterator[IO[bytes]]:
    """Yield a binary handle on the temporary of ``path`` (streamed into: nothing is held in memory, no signal is
    held while writing); on success the file and its record ``PATH.manifest.json`` appear together. The caller
    has claimed ``path``."""
    with atomic_file_set(path, kind, facts) as files, open(files.temporary(path), "wb") as handle:
        yield handle  # closed (so flushed) before the set fsyncs it


def write_text_with_record(path: str | os.PathLike, kind: OutputKind, text: str) -> Path:
    """Write ``text`` (UTF-8, exactly as given) to ``path`` and its record, together; returns ``path``."""
    with file_with_record(path, kind) as handle:
        handle.write(text.encode("utf-8"))
    return Path(path)


def write_json_with_record(path: str | os.PathLike, kind: OutputKind, obj: Any, **dump_kwargs: Any) -> Path:
    """Write ``json.dumps(obj, **dump_kwargs)`` plus a newline to ``path`` and its record, together."""
    return write_text_with_record(path, kind, json.dumps(obj, **dump_kwargs) + "\n")
