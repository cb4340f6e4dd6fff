"""The proof that an output is a command's own: a record the command wrote, naming every file with its fingerprint.

A command that writes an output also writes a **record**, last: a JSON object (often the output's manifest, with
counts and settings) holding a ``codeft_output`` section::

    "codeft_output": {"command": "conversion.megatron_to_hf", "nonce": "9f1c...", "format": 1,
                      "files": {"config.json": {"size": 812, "sha256": "..."}, ...}}

``command`` is the command that wrote it (``OutputKind.command``), ``nonce`` a random id of this one output
(``scripts/demo.py`` keeps the nonces of what it made), ``files`` every file the command wrote, relative to the
record's folder, with its size and a SHA-256 (of the whole file up to ``WHOLE_HASH_BYTES``; beyond that of its
size, first and last ``END_BYTES``: ``sha256_ends``, so that checking a 30 GB checkpoint reads 16 MiB).

Where the record lives (``OutputKind``): a folder output holds it (``OUT/conversion_manifest.json``); a file
output has it beside it, named after it in full (``out/pairs.jsonl`` -> ``out/pairs.jsonl.manifest.json``) and
put in place with it, never after it (``guardrails.file_set``: an interrupt between the two would leave a file
no later run may replace); the datasets at a prefix have ``PREFIX.preprocess.manifest.json``. A path is provably
a command's output only when that record exists, was written by the same command, and lists the path with the
fingerprint it has now: a user's file of the same name, another tool's output (``save_pretrained``, the fork's
preprocess) or one of our outputs edited since is not. ``guardrails.output_paths`` applies this to every output a
command claims.

Library module, no command line.

    HF = OutputKind("a Hugging Face model folder", "conversion.megatron_to_hf", "conversion_manifest.json")
    write_record(tmp / HF.record, HF, tmp, facts={"tp": 2})      # every file under tmp, written last
    problem = proof_problem(out / HF.record, HF, out, files_under(out))   # None: every file proven
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

RECORD_KEY = "codeft_output"
RECORD_FORMAT = 1
WHOLE_HASH_BYTES = 64 << 20
END_BYTES = 8 << 20
SIDECAR_SUFFIX = ".manifest.json"
MAX_RECORD_BYTES = 64 << 20  # a user's big file at a record's name is not read whole to find out it is not one


@dataclass(frozen=True)
class OutputKind:
    """What a command writes: ``what`` for messages, the ``command`` its records name, and for a folder output the
    name of the record inside it."""

    what: str
    command: str
    record: str = "manifest.json"


def sidecar_record(path: str | os.PathLike) -> Path:
    """The record of a file output: ``NAME.manifest.json`` beside ``NAME`` (the full name: ``x.txt`` and
    ``x.jsonl`` never share one)."""
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def fingerprint(path: str | os.PathLike) -> dict[str, Any]:
    """``{"size", "sha256"}`` of a file; beyond ``WHOLE_HASH_BYTES``, ``{"size", "sha256_ends"}``."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size <= WHOLE_HASH_BYTES:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
            return {"size": size, "sha256": digest.hexdigest()}
        digest.update(str(size).encode() + b"\0" + handle.read(END_BYTES))
        handle.seek(size - END_BYTES)
        digest.update(handle.read(END_BYTES))
        return {"size": size, "sha256_ends": digest.hexdigest()}


def files_under(root: Path, skip: Iterable[str] = ()) -> list[Path]:
    """Every file below ``root`` (symlinks and other non-folders included, folders followed only when real),
    sorted, except the top-level names in ``skip`` and the hidden temporaries ``guardrails`` itself makes."""
    from guardrails.output_paths import is_leftover  # the one place that knows their names

    found, skipped = [], set(skip)
    for folder, dirs, names in os.walk(root):
        here = Path(folder)
        top = here == root
        dirs[:] = [d for d in dirs if not (is_leftover(d) or (top and d in skipped))
                   and not (here / d).is_symlink()]
        found += [here / d for d in os.listdir(here) if (here / d).is_symlink() and (here / d).is_dir()]
        found += [here / n for n in names if not is_leftover(n) and not (top and n in skipped)]
    return sorted(found)


def record_section(kind: OutputKind, root: Path, files: Iterable[Path], nonce: str | None = None,
                   read_from: Mapping[Path, Path] | None = None) -> dict[str, Any]:
    """The ``codeft_output`` section naming ``files`` (relative to ``root``) with their fingerprints; ``read_from``:
    where a file's content is still (its temporary, ``guardrails.file_set``) when not at its name yet."""
    read_from = read_from or {}
    listed = {Path(f).relative_to(root).as_posix(): fingerprint(read_from.get(Path(f), f)) for f in files}
    return {"command": kind.command, "format": RECORD_FORMAT, "nonce": nonce or secrets.token_hex(8),
            "files": dict(sorted(listed.items()))}


def write_record(path: str | os.PathLike, kind: OutputKind, root: str | os.PathLike,
                 files: Iterable[Path] | None = None, facts: Mapping[str, Any] | None = None,
                 **dump_kwargs: Any) -> dict[str, Any]:
    """Write the record ``path`` (atomically, last): ``facts`` plus the section for ``files`` (default: every file
    under ``root`` but the record itself). Returns the section."""
    from guardrails.atomic_files import write_json_atomic

    path, root = Path(path), Path(root)
    if files is None:
        files = [f for f in files_under(root) if f != path]
    section = record_section(kind, root, files)
    write_json_atomic(path, {**(facts or {}), RECORD_KEY: section}, **({"indent": 2} | dump_kwargs))
    return section


def read_record(path: str | os.PathLike) -> dict[str, Any] | None:
    """The ``codeft_output`` section of the record at ``path``; None when there is none (a user's file, a
    manifest of an older version, not JSON, a file too large to be one)."""
    try:
        if Path(path).stat().st_size > MAX_RECORD_BYTES:
            return None
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    section = data.get(RECORD_KEY) if isinstance(data, dict) else None
    if not (isinstance(section, dict) and isinstance(section.get("files"), dict)
            and isinstance(section.get("command"), str)):
        return None
    return section


def record_problem(path: Path, kind: OutputKind) -> str | None:
    """None when ``path`` is missing or a record of ``kind``'s command, else why not (it must not be replaced)."""
    if not path.exists() and not path.is_symlink():
        return None
    section = read_record(path)
    if section is None:
        return f"{path.name} is not a record of this toolkit"
    if section["command"] != kind.command:
        return f"{path.name} records an output of {section['command']}, not of {kind.command}"
    return None


def proof_problem(record: Path, kind: OutputKind, root: Path, present: Iterable[Path]) -> str | None:
    """None when the record at ``record`` was written by ``kind.command`` and lists every path in ``present``
    (relative to ``root``) with the fingerprint it has now; else the reason, naming the first unproven file."""
    section = read_record(record)
    if section is None:
        there = ("is not a record of this toolkit; outputs of versions before records have none, move those away"
                 " once" if record.exists() else "is missing")
        return f"no record proves it is an output of {kind.command} ({record.name} {there})"
    if section["command"] != kind.command:
        return f"it is an output of {section['command']} (says {record.name}), not of {kind.command}"
    listed: dict[str, Any] = section["files"]
    for path in present:
        name = Path(path).relative_to(root).as_posix()
        if name not in listed:
            return f"{name} is not one of the files {record.name} lists"
        if Path(path).is_symlink() or not Path(path).is_file() or fingerprint(path) != listed[name]:
            return f"{name} changed since {record.name} was written"
    return None
