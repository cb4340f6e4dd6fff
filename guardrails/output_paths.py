"""Whether an output path may be written or replaced: the one rule every command that writes goes through.

A command writes a file, a folder it replaces whole, or files into a folder; a user file must never be lost to
it. The rule: a path that does not exist (or an empty folder) may be written; an existing one may be replaced
only when it provably holds an output of the same kind of command, as the kind's recogniser says (an HF model
folder: a model's ``config.json``, weights in a layout the reader knows, nothing else but files a conversion
writes). Anything else is refused with ``OutputRefused``, whose one-line message names the path, lists what is
there and says how to go on. The recognisers live beside the formats they know (``conversion``, ``dataset``,
``training``); this module only applies them, so it imports none of the project's other packages.

Claiming an output also removes what earlier killed or interrupted runs left beside it: hidden ``.NAME.tmp-PID``
and ``.NAME.old-PID`` siblings (and ``NAME.tmp-PID``) of processes that are no longer alive. Claimed paths are
remembered with their state (``unchanged`` until the command puts the finished output in place, then
``complete``) so that ``guardrails.command_errors`` can say what an interrupt left.

    from guardrails.output_paths import claim_file, claim_folder, check_output_prefix
    claim_folder(out, "a Hugging Face model folder", hf_folder_problem)   # problem(folder) -> reason or None
    claim_file(path, "a split file", split_file_problem)
    check_output_prefix("out/data/pairs")                                  # refuses "out/data/"

Library module, no command line.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Callable

# problem(path) -> None when the existing path is an output of this kind, else a short reason why it is not
KindProblem = Callable[[Path], "str | None"]

_LEFTOVER = re.compile(r"^\.?(?P<name>.+?)\.(?:tmp|old)-(?P<pid>\d+)(?:-[0-9a-f]+)?$")
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


def final_name(path: Path) -> Path:
    """The output a temporary or set-aside copy stands for (``.x.json.tmp-12-ab`` -> ``x.json``), else ``path``."""
    match = _LEFTOVER.match(path.name)
    return path.with_name(match.group("name")) if match else path


def output_entries(folder: Path) -> list[Path]:
    """The entries of ``folder`` that are not temporaries or set-aside copies (what the recognisers judge)."""
    return [entry for entry in folder.iterdir() if not _LEFTOVER.match(entry.name)]


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
    """Delete the temporaries and set-aside old copies of ``path`` that dead processes left beside it.

    Matches ``.NAME.tmp-PID[-HEX]``, ``.NAME.old-PID`` and ``NAME.tmp-PID`` for this ``NAME`` only, and only
    when process PID is gone, so a concurrent run's work in progress is never touched.
    """
    path = Path(path)
    if not path.parent.is_dir():
        return []
    return [entry for entry in path.parent.iterdir() if (match := _LEFTOVER.match(entry.name))
            and match.group("name") == path.name and _remove_if_dead(entry)]


def _refuse(path: Path, what: str, reason: str, fix: str) -> OutputRefused:
    return OutputRefused(f"{path}: {reason}; it is not {what}, so this command will not write over it. {fix}")


def claim_folder(out: str | os.PathLike, what: str, problem: KindProblem, flag: str = "--out") -> Path:
    """Check that the folder ``out`` may be (re)written by a command whose outputs are ``what``; returns it.

    Allowed: a missing path, an empty folder, or a folder ``problem`` accepts (returns None for; recognisers
    judge ``output_entries``, so leftovers of killed runs never count). Refused: a file, or anything else, with
    its listing. Once allowed, the leftovers of dead processes inside the folder are removed.
    """
    out = Path(out)
    fix = f"Move it away or choose another {flag}."
    remove_stale_leftovers(out.resolve())
    if out.exists() and not out.is_dir():
        raise _refuse(out, what, "exists and is a file", f"Give {flag} a folder path.")
    if out.is_dir() and output_entries(out):
        reason = problem(out)
        if reason is not None:
            raise _refuse(out, what, f"{reason} (it holds: {describe_entries(out)})", fix)
    if out.is_dir():  # provably this command's folder: what its killed runs left inside it goes too
        for entry in out.iterdir():
            _remove_if_dead(entry)
    _STATES.setdefault(out.resolve(), "unchanged")
    return out


def claim_file(path: str | os.PathLike, what: str, problem: KindProblem | None, flag: str = "--output") -> Path:
    """Check that the file ``path`` may be (re)written as ``what``; returns it.

    Allowed: a missing path, or an existing regular file ``problem`` accepts. ``problem=None`` means the
    command never replaces an existing file (it must not exist).
    """
    text = os.fspath(path)
    path = Path(path)
    if text.endswith(("/", os.sep)) or path.is_dir():
        raise OutputRefused(f"{text}: is a folder; give {flag} a file name (e.g. {Path(text) / 'out.json'})")
    remove_stale_leftovers(path.resolve())
    if path.exists() or path.is_symlink():
        if not path.is_file():
            raise _refuse(path, what, "exists and is not a regular file", f"Choose another {flag}.")
        reason = "exists" if problem is None else problem(path)
        if reason is not None:
            raise _refuse(path, what, reason, f"Move it away or choose another {flag}.")
    _STATES.setdefault(path.resolve(), "unchanged")
    return path


def json_object_with(*keys: str) -> KindProblem:
    """A recogniser of the JSON reports a command writes: a JSON object holding at least one of ``keys``."""
    def problem(path: Path) -> str | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return "exists and is not JSON"
        if not isinstance(data, dict) or (keys and not any(key in data for key in keys)):
            return f"exists and is not a JSON object with {' or '.join(map(repr, keys)) or 'keys'}"
        return None
    return problem


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
