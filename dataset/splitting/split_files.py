"""Weighted split files of the BigCode Megatron fork: the one module that knows their bytes.

A split file is what ``--train-weighted-split-paths-path`` / ``--valid-weighted-split-paths-path`` read:
one line, every group in double quotes, ending in ``"`` and a newline (DESIGN.md 2.2)::

    "train: 1.0 0:0.95 /data/prefix"
    "valid: 0.7 0.95:1 /data/a, 0.3 0:1 /data/b" "other: 1.0 0:1 /data/c"

``GROUP := NAME ':' DATASET (',' DATASET)*`` and ``DATASET := WEIGHT START:END PREFIX``.

:func:`parse_split_file` accepts exactly what the fork's ``parse_data_paths_path`` accepts (its asserts,
reproduced one by one) plus what the dataset build later asserts (``0 <= START < END <= 1``, numeric
positive weights for blending), and raises :class:`SplitFileError` naming the file, the group, the
dataset and the field, with the fix. :func:`format_split_line` writes the same grammar back.

Run as ``python -m dataset.splits check FILE`` / ``write`` (see :mod:`dataset.splits`).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from guardrails.file_set import write_text_with_record
from guardrails.output_paths import claim_file
from guardrails.output_records import OutputKind

ROLES = ("train", "valid", "test")


class SplitFileError(ValueError):
    """A split file (or split entry) the fork would reject; the message says what, where and how to fix it."""


@dataclass(frozen=True)
class SplitDataset:
    """One ``WEIGHT START:END PREFIX`` entry: documents ``[round(START*N), round(END*N))`` of ``PREFIX``."""

    weight: float
    start: float
    end: float
    prefix: str

    def __post_init__(self) -> None:
        if not (math.isfinite(self.weight) and self.weight > 0):
            raise SplitFileError(f"weight {self.weight!r} of {self.prefix!r}: must be a positive number")
        if not (0.0 <= self.start < self.end <= 1.0):
            raise SplitFileError(
                f"range {self.start!r}:{self.end!r} of {self.prefix!r}: need 0 <= START < END <= 1"
            )
        if not self.prefix or any(c.isspace() for c in self.prefix) or any(c in self.prefix for c in ',"'):
            raise SplitFileError(
                f"prefix {self.prefix!r}: must be non-empty without whitespace, commas or double quotes"
                " (the fork splits on them)"
            )

    def document_range(self, num_documents: int) -> tuple[int, int]:
        """The fork's ``get_split_by_range_``: Python ``round`` (half to even) of each bound times N."""
        return round(self.start * float(num_documents)), round(self.end * float(num_documents))

    def entry(self) -> str:
        """This dataset as the split file writes it, e.g. ``1.0 0:0.95 sample``."""
        return f"{_format_weight(self.weight)} {_format_bound(self.start)}:{_format_bound(self.end)} {self.prefix}"


@dataclass(frozen=True)
class SplitGroup:
    """A named group of weighted datasets; each group becomes one (possibly blended) dataset."""

    name: str
    datasets: tuple[SplitDataset, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "datasets", tuple(self.datasets))
        if not self.name or any(c.isspace() for c in self.name) or any(c in self.name for c in ':,"/'):
            raise SplitFileError(
                f"group name {self.name!r}: must be non-empty without whitespace, ':', ',', '/' or '\"'"
                " (it becomes part of the index-map file names)"
            )
        if not self.datasets:
            raise SplitFileError(f"group {self.name!r}: needs at least one dataset")


def _format_weight(weight: float) -> str:
    return repr(float(weight))


def _format_bound(bound: float) -> str:
    # The fork's own files write "0:0.95" and "0.95:1": whole bounds without a decimal point.
    return str(int(bound)) if float(bound).is_integer() else repr(float(bound))


def parse_split_entry(text: str, where: str = "entry") -> SplitDataset:
    """Parse one ``WEIGHT START:END PREFIX`` string (a CLI argument or a run-config item)."""
    fields = text.split()
    if len(fields) != 3:
        raise SplitFileError(
            f"{where}: {text.strip()!r} has {len(fields)} whitespace-separated fields, expected 3:"
            " WEIGHT START:END PREFIX (e.g. '1.0 0:0.95 data/prefix')"
        )
    weight_text, range_text, prefix = fields
    bounds = range_text.split(":")
    if len(bounds) != 2:
        raise SplitFileError(f"{where}: range {range_text!r} must be START:END with one ':' (e.g. 0:0.95)")
    weight = _number(weight_text, f"{where}: WEIGHT")
    start = _number(bounds[0], f"{where}: START of {range_text!r}")
    end = _number(bounds[1], f"{where}: END of {range_text!r}")
    if not start < end:
        raise SplitFileError(f"{where}: range {range_text!r} needs START < END (the fork asserts it)")
    if start < 0 or end > 1:
        raise SplitFileError(
            f"{where}: range {range_text!r} must lie within 0:1 (fractions of the documents;"
            " the fork asserts END <= 1 and a document index >= 0)"
        )
    if not (math.isfinite(weight) and weight > 0):
        raise SplitFileError(f"{where}: WEIGHT {weight_text!r} must be a positive number")
    try:
        return SplitDataset(weight, start, end, prefix)
    except SplitFileError as exc:
        raise SplitFileError(f"{where}: {exc}") from exc


def _number(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise SplitFileError(f"{what} {text!r} is not a number") from None


def parse_split_line(line: str, where: str = "<line>", role: str | None = None) -> list[SplitGroup]:
    """Parse the text of a split file (one line with its newline), applying the fork's checks in order."""
    if role is not None and role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    if not line.startswith('"'):
        raise SplitFileError(f'{where}:1: the line must start with a double quote, e.g. "train: 1.0 0:1 prefix"')
    if not line.endswith("\n"):
        raise SplitFileError(f"{where}:1: missing trailing newline (the fork requires the line to end with '\"' + newline)")
    if not line.endswith('"\n') and line.rstrip().endswith('"'):
        raise SplitFileError(
            f"{where}:1: {line.rstrip()[-1:]!r} is followed by {line[len(line.rstrip()):-1]!r}; nothing may come"
            " between the closing double quote and the newline"
        )
    if not line.endswith('"\n'):
        raise SplitFileError(
            f'{where}:1: missing closing double quote: the line ends with {line[-12:-1]!r};'
            ' every group is quoted, e.g. "valid: 1.0 0.95:1 prefix"'
        )
    groups = []
    for number, group_text in enumerate(line[1:-2].split('" "'), start=1):
        groups.append(_parse_group(group_text, f"{where}:1: group {number}"))
    if role == "train" and len(groups) != 1:
        raise SplitFileError(
            f"{where}:1: a train split file takes exactly one group, found {len(groups)}"
            " (the fork asserts it for --train-weighted-split-paths)"
        )
    return groups


def _parse_group(text: str, where: str) -> SplitGroup:
    if '"' in text:
        raise SplitFileError(
            f"{where}: stray double quote in {text!r}; groups are separated by '\" \"' (quote, one space, quote)"
        )
    if ":" not in text:
        raise SplitFileError(f"{where}: {text!r} has no 'NAME:' before its datasets (e.g. train: 1.0 0:1 prefix)")
    name, body = text.split(":", 1)
    where = f"{where} ({name!r})"
    if not name or any(c.isspace() for c in name):
        raise SplitFileError(
            f"{where}: group name {name!r} is empty or contains whitespace; write NAME: then the datasets,"
            " e.g. valid: 1.0 0.95:1 prefix"
        )
    datasets = [
        parse_split_entry(item, f"{where}, dataset {i}") for i, item in enumerate(body.split(","), start=1)
    ]
    try:
        return SplitGroup(name, tuple(datasets))
    except SplitFileError as exc:
        raise SplitFileError(f"{where}: {exc}") from exc


def read_split_text(path: str | os.PathLike) -> str:
    """The file's single line, read as the fork reads it (text mode, universal newlines)."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.readlines()
    except OSError as exc:
        raise SplitFileError(f"{path}: cannot read split file ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise SplitFileError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    if len(lines) != 1:
        raise SplitFileError(
            f"{path}: {len(lines)} lines, the fork expects exactly 1"
            " (put every group on one line, each in double quotes, separated by one space)"
        )
    return lines[0]


def parse_split_file(path: str | os.PathLike, role: str | None = None) -> list[SplitGroup]:
    """Parse and validate a split file; ``role="train"`` also enforces the single train group."""
    return parse_split_line(read_split_text(path), str(path), role)


def format_split_line(groups: Sequence[SplitGroup]) -> str:
    """The exact bytes of a split file for ``groups`` (quotes, one line, trailing newline)."""
    if not groups:
        raise SplitFileError("a split file needs at least one group")
    quoted = ['"' + g.name + ": " + ", ".join(d.entry() for d in g.datasets) + '"' for g in groups]
    return " ".join(quoted) + "\n"


SPLIT_FILE = OutputKind("a split file", "dataset.splits write")


def claim_split_file(path: str | os.PathLike) -> Path:
    """Refuse a split file path that is not missing or provably an earlier ``dataset.splits write`` output."""
    return claim_file(path, SPLIT_FILE, "--out")


def write_split_file(path: str | os.PathLike, groups: Sequence[SplitGroup]) -> Path:
    """Write ``groups`` to ``path`` and its record ``PATH.manifest.json``, put in place together (temporary
    names, then renames); returns the path."""
    path = Path(path)
    text = format_split_line(groups)
    parse_split_line(text, str(path))  # never write what the fork would reject
    claim_split_file(path)
    return write_text_with_record(path, SPLIT_FILE, text)


def resolve_prefix(prefix: str, split_file: str | os.PathLike) -> Path:
    """A prefix as this toolkit resolves it: absolute as is, else relative to the split file's folder."""
    candidate = Path(prefix)
    return candidate if candidate.is_absolute() else Path(split_file).resolve().parent / candidate
