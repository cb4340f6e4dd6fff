"""Whether an output path may be written or replaced: the one rule every command that writes goes through.

The rule: a path that does not exist (or an empty folder) may be written; an existing one may be replaced only
when a record the same command wrote proves it is that command's output (``guardrails.output_records``: the
record names every file the command wrote with its size and hash, and each is still as written). Names and
shapes prove nothing: a user's ``results.json``, a ``save_pretrained`` folder or the fork's own dataset files
look like our outputs and are refused with ``OutputRefused``, whose one-line message names the path, says why
and how to go on. The kinds (``OutputKind``: what, which command, where its record lives) are defined beside
the formats they write; this module only applies them, so it imports none of the project's other packages.

Leftovers are only the hidden temporaries ``guardrails`` itself names, with the project's marker:
``.NAME.codeft.tmp-PID-HEX`` (being written) and ``.NAME.codeft.old-PID-HEX`` (set aside while replaced). Those of
processes no longer alive are removed when a command claims ``NAME`` or the folder holding them; nothing else is
ever a leftover (a user's ``train.txt.old-1999`` is theirs, and a folder holding it is not empty). Claimed paths
are remembered with their state (``unchanged`` until the command puts the finished output in place, then
``complete``) so that ``guardrails.command_errors`` can say what an interrupt left.

    claim_folder(out, HF_MODEL, "--out", inputs=[megatron_dir])   # missing, empty, or proven by its record
    claim_file(path, SPLIT_FILE, "--out")                         # record: PATH.manifest.json
    stale = claim_prefix(record, PREPROCESS, files_to_write)      # files of the old run this one does not rewrite
    check_run_folder(save, TRAINING_RUN, "training.save")         # a folder written into: its record names it

Library module, no command line.
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
from pathlib import Path
from typing import Iterable

from guardrails.output_records import (
    OutputKind, files_under, proof_problem, read_record, record_problem, sidecar_record, write_record,
)

MARKER = "codeft"
_LEFTOVER = re.compile(rf"^\.(?P<name>.+)\.{MARKER}\.(?:tmp|old)-(?P<pid>\d+)-[0-9a-f]{{8}}$")
_STATES: dict[Path, str] = {}  # claimed output -> "unchanged" | "complete" | "intact (...)": for the handler
LISTED = 8  # entries named in a refusal; the rest are counted


class OutputRefused(ValueError):
    """An output path that holds something this command must not write over; the message says what and why."""


def claimed_outputs() -> dict[Path, str]:
    """Outputs claimed by this process and their state, in claim order."""
    return dict(_STATES)


def note_complete(path: str | os.PathLike) -> None:
    """Record that the finished output ``path`` (or one inside a claimed folder) is now in place."""
    target = Path(path).resolve()
    for claimed in _STATES:
        if claimed == target:
            _STATES[claimed] = "complete"
        elif claimed in target.parents:
            _STATES[claimed] = "intact (only complete outputs were added)"


def describe_entries(folder: Path) -> str:
    """``a.txt, b/, c.bin and 12 more`` (sorted; folders end in '/')."""
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    shown = ", ".join(names[:LISTED])
    return shown + (f" and {len(names) - LISTED} more" if len(names) > LISTED else "")


def process_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (one owned by another user counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def temporary_name(path: Path, what: str = "tmp") -> Path:
    """A fresh hidden ``.NAME.codeft.{what}-PID-HEX`` beside ``path`` (``what``: ``tmp`` or ``old``)."""
    return path.with_name(f".{path.name}.{MARKER}.{what}-{os.getpid()}-{secrets.token_hex(4)}")


def is_leftover(name: str) -> bool:
    """Whether ``name`` is a temporary or set-aside copy ``guardrails`` made (of any process)."""
    return _LEFTOVER.match(name) is not None


def final_name(path: Path) -> Path:
    """The output a temporary or set-aside copy stands for (``.x.json.codeft.tmp-12-ab01cd23`` -> ``x.json``),
    also for a file inside a temporary folder (``.hf.codeft.tmp-12-ab01cd23/config.json`` -> ``hf/config.json``)."""
    return Path(*(match.group("name") if (match := _LEFTOVER.match(part)) else part for part in Path(path).parts))


def _remove_if_dead(entry: Path) -> bool:
    match = _LEFTOVER.match(entry.name)
    if not match:
        return False
    pid = int(match.group("pid"))
    if pid == os.getpid() or process_alive(pid):
        return False  # a concurrent run's work in progress
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        entry.unlink(missing_ok=True)
    return True


def remove_stale_leftovers(path: str | os.PathLike) -> list[Path]:
    """Delete the temporaries and set-aside copies of ``path`` that dead processes left beside it (only
    ``.NAME.codeft.{tmp,old}-PID-HEX`` for this ``NAME``, and only when process PID is gone)."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    return [entry for entry in path.parent.iterdir() if (match := _LEFTOVER.match(entry.name))
            and match.group("name") == path.name and _remove_if_dead(entry)]


def _refuse(path: Path, kind: OutputKind, reason: str, fix: str) -> OutputRefused:
    return OutputRefused(f"{path}: {reason}; it is not provably {kind.what} written by {kind.command}, so this"
                         f" command will not write over it. {fix}")


def _refuse_inputs(out: Path, inputs: Iterable[str | os.PathLike | None], flag: str) -> None:
    """An output that is one of the command's inputs, or a folder holding one, would destroy what it reads."""
    target = out.resolve()
    for given in inputs:
        if given is None:
            continue
        source = Path(given).resolve()
        if source == target or target in source.parents:
            raise OutputRefused(f"{out}: {'is' if source == target else 'holds'} {given}, an input of this command;"
                                f" writing there would destroy it. Choose another {flag}")


def _holds_something(folder: Path, kind: OutputKind, flag: str) -> bool:
    """Whether ``folder`` holds anything but our own leftovers (those of dead processes are removed); a file at
    ``folder`` is refused."""
    if (folder.exists() or folder.is_symlink()) and not folder.is_dir():
        raise _refuse(folder, kind, "exists and is a file", f"Give {flag} a folder path.")
    if not folder.is_dir():
        return False
    for entry in folder.iterdir():
        _remove_if_dead(entry)
    return any(not is_leftover(entry.name) for entry in folder.iterdir())


def claim_folder(out: str | os.PathLike, kind: OutputKind, flag: str = "--out",
                 inputs: Iterable[str | os.PathLike | None] = ()) -> Path:
    """Check that the folder ``out`` may be replaced by ``kind``'s command; returns it.

    Allowed: a missing path, an empty folder (our own dead leftovers aside), or a folder whose record
    (``out/kind.record``) was written by the same command and lists every file in it as it is now. Refused: a
    file, an input of the command, anything else, with its listing.
    """
    out = Path(out)
    _refuse_inputs(out, inputs, flag)
    remove_stale_leftovers(out.resolve())
    if _holds_something(out, kind, flag):
        problem = proof_problem(out / kind.record, kind, out, files_under(out, skip=(kind.record,)))
        if problem is not None:
            raise _refuse(out, kind, f"{problem} (it holds: {describe_entries(out)})",
                          f"Move it away or choose another {flag}.")
    _STATES.setdefault(out.resolve(), "unchanged")
    return out


def claim_file(path: str | os.PathLike, kind: OutputKind, flag: str = "--output",
               inputs: Iterable[str | os.PathLike | None] = (), record: str | os.PathLike | None = None,
               track: bool = True) -> Path:
    """Check that the file ``path`` may be (re)written by ``kind``'s command; returns it.

    Allowed: a missing path, or a regular file that ``record`` (default ``PATH.manifest.json``) lists with the
    fingerprint it has now, the record written by the same command. The record's own path must be missing or
    such a record (it is rewritten too). Refused: a folder, an input of the command, anything else.
    ``track=False``: not one of the outputs an interrupt message names (a cache file).
    """
    text = os.fspath(path)
    path = Path(path)
    if text.endswith(("/", os.sep)) or path.is_dir():
        raise OutputRefused(f"{text}: is a folder; give {flag} a file name (e.g. {Path(text) / 'out.json'})")
    _refuse_inputs(path, inputs, flag)
    record = Path(record) if record is not None else sidecar_record(path)
    remove_stale_leftovers(path.resolve())
    if path.exists() or path.is_symlink():
        if path.is_symlink() or not path.is_file():
            raise _refuse(path, kind, "exists and is not a regular file", f"Choose another {flag}.")
        problem = proof_problem(record, kind, record.parent, [path])
        if problem is not None:
            raise _refuse(path, kind, f"exists and {problem}", f"Move it away or choose another {flag}.")
    problem = record_problem(record, kind)
    if problem is not None:
        raise _refuse(record, kind, f"exists and {problem}", f"Move it away or choose another {flag}.")
    if track:
        _STATES.setdefault(path.resolve(), "unchanged")
    return path


def claim_prefix(record: str | os.PathLike, kind: OutputKind, writes: Iterable[Path],
                 flag: str = "--output-prefix") -> list[Path]:
    """Check that the files ``writes`` (the datasets of one prefix) may be written; returns the stale ones.

    Each existing file among ``writes`` must be listed, as it is now, by ``record`` (the prefix's manifest)
    written by the same command. Stale: files the old record lists, still as recorded, that this run does not
    write (a hold-out the new run has not); the caller deletes them when it puts its files in place. Anything the
    record does not prove is never touched: a separately made ``PREFIX_valid`` dataset, the fork's files.
    """
    record, writes = Path(record), [Path(p) for p in writes]
    problem = record_problem(record, kind)
    if problem is not None:
        raise _refuse(record, kind, f"exists and {problem}", f"Move it away or choose another {flag}.")
    for path in writes:
        remove_stale_leftovers(path.resolve())
        if path.exists() or path.is_symlink():
            problem = proof_problem(record, kind, record.parent, [path])
            if problem is not None:
                raise _refuse(path, kind, f"exists and {problem}", f"Move it away or choose another {flag}.")
    section = read_record(record)
    if section is None:
        return []
    written = {p.resolve() for p in writes}
    old = [record.parent / name for name in section["files"]]
    return [p for p in old if p.resolve() not in written and p.exists()
            and proof_problem(record, kind, record.parent, [p]) is None]


def check_run_folder(folder: str | os.PathLike, kind: OutputKind, flag: str, adopt: str = "") -> Path:
    """Check that ``folder``, which a command writes into over time (a training run's save folder), is its own.

    Allowed: a missing or empty folder, or one holding a record (``folder/kind.record``) of the same command,
    which ``own_run_folder`` wrote when the folder was first used. Such a record names the folder, not each file:
    the files of a run in progress change as it goes. ``adopt``: the command that adopts a folder without a record
    (``adopt_run_folder``), named in the refusal.
    """
    folder = Path(folder)
    if _holds_something(folder, kind, flag):
        section = read_record(folder / kind.record)
        if section is None or section["command"] != kind.command:
            reason = (f"no {kind.record} of {kind.command} proves it is one" if section is None
                      else f"it is an output of {section['command']} (says {kind.record})")
            fix = f"Move it away or choose another {flag}."
            if section is None and adopt:
                fix += f" If it is this run's own folder (written before it had a record), adopt it once: {adopt}"
            raise _refuse(folder, kind, f"{reason} (it holds: {describe_entries(folder)})", fix)
    _STATES.setdefault(folder.resolve(), "unchanged")
    return folder


def own_run_folder(folder: str | os.PathLike, kind: OutputKind) -> str:
    """Create ``folder`` and its record when missing (after :func:`check_run_folder`); returns the record's nonce."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    section = read_record(folder / kind.record)
    if section is None:
        section = write_record(folder / kind.record, kind, folder, files=[],
                               facts={"folder": f"written into by {kind.command}"})
    return str(section["nonce"])


def adopt_run_folder(folder: str | os.PathLike, kind: OutputKind, flag: str, foreign: list[str]) -> str:
    """Write the record of a run folder that was written into before records existed, on the user's word.

    The user's command is the proof; the folder must still hold nothing but what such a run writes (``foreign``:
    the names it holds that no run writes) and no record of another command. Returns the record's nonce (an
    existing record of the same command is kept).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise OutputRefused(f"{flag} {folder}: no such folder; there is nothing to adopt")
    section = read_record(folder / kind.record)
    if section is not None and section["command"] != kind.command:
        raise OutputRefused(f"{flag} {folder}: it is an output of {section['command']} (says {kind.record}); it is"
                            " not a folder to adopt")
    if foreign:
        raise OutputRefused(f"{flag} {folder}: it holds {', '.join(foreign[:LISTED])}, which {kind.command} does"
                            " not write; move those away first, then adopt it")
    return own_run_folder(folder, kind)


def check_output_prefix(prefix: str, flag: str = "--output-prefix") -> str:
    """Refuse an output prefix without a file-name part (``out/data/``, ``.``) or one that names a folder."""
    name = os.path.basename(prefix)  # not Path.name, which reads "out/." as "out"
    if not prefix or prefix.endswith(("/", os.sep)) or name in ("", ".", "..") or Path(prefix).is_dir():
        example = str(Path(prefix.rstrip("/" + os.sep) or ".") / "pairs")
        raise OutputRefused(f"{flag} {prefix!r}: needs a file-name part after the folder (e.g. {example}): the"
                            " outputs are named PREFIX_inputs_document.bin and so on")
    _STATES.setdefault(prefix_claim(prefix), "unchanged")  # what a failure message names
    return prefix


def prefix_claim(prefix: str) -> Path:
    """``PREFIX_*``, the claimed output of a command that writes datasets under a prefix; pass it to
    :func:`note_complete` once they are all in place."""
    return Path(prefix + "_*").resolve()


def make_parents(path: Path) -> list[Path]:
    """Create the missing folders above ``path``; returns them, deepest first (for ``remove_if_empty``)."""
    missing = [parent for parent in path.parents if not parent.exists()]
    path.parent.mkdir(parents=True, exist_ok=True)
    return missing


def remove_if_empty(folders: list[Path]) -> None:
    """Remove the folders a failed write created, deepest first, as long as they are still empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def forget_claims() -> None:
    """Drop every claim (tests running several commands in one process)."""
    _STATES.clear()
