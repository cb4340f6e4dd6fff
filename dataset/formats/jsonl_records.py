"""Read jsonl record files (plain or ``.gz``) strictly: one JSON object per line, two string fields.

Used by ``dataset.preprocess``; not a command of its own. Lines are split on ``b"\\n"`` only, as the fork's
``for line in open(...)`` does for valid JSON (a raw U+2028 inside a JSON string stays inside its record;
never ``str.splitlines``). Accepted and not errors: a UTF-8 BOM at the start of a file, CRLF line ends (JSON
treats the ``\\r`` as whitespace), blank lines (counted, not records). Everything else that is wrong with a
line is a :class:`RecordIssue` with a reason from :data:`REASONS`; the caller either stops on it
(:class:`InvalidRecordError`) or skips and counts it.

A *record* is a non-blank line; record ordinals (0-based, across all input files in order) are what the
held-out selection is drawn over, so ``count_records`` and ``parse_chunk`` must agree on them. Files are
read in chunks of whole lines (``iter_chunks``) so that worker processes can parse them in parallel.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterator

import orjson

BOM = b"\xef\xbb\xbf"
NUL = b"\x00"
READ_BLOCK = 4 * 1024 * 1024
DEFAULT_TARGETS_ALIAS = {"targets": "outputs"}  # the OctoPack README calls the targets field "outputs"

# reason -> how to fix it (the error message ends with this)
REASONS: dict[str, str] = {
    "line_too_long": "split the record or raise data.max_line_bytes / --max-line-bytes",
    "nul_byte": "remove NUL characters (is this binary data?)",
    "invalid_utf8": "re-encode the file as UTF-8",
    "invalid_unicode": "replace the lone surrogate \\uD800-\\uDFFF escape with a real character",
    "invalid_json": "make every line exactly one JSON object",
    "truncated_last_line": "the file was cut short: regenerate it or delete its last line",
    "not_an_object": "make every line a JSON object {\"inputs\": ..., \"targets\": ...}",
    "missing_key": "add the field to every record, or name the fields with --keys INPUTS TARGETS",
    "null_key": "give the field a string value, or drop the record",
    "non_string_key": "give the field a string value (text), or drop the record",
    "empty_field": "drop the record or give the field some text (the fork would drop it from one file only)",
    "no_tokens": "drop the record: the field tokenizes to nothing (the fork would drop it from one file only)",
}


@dataclass(frozen=True)
class RecordIssue:
    """What is wrong with one line: where, which field (or None), the reason code and a detail."""

    path: str
    line: int
    key: str | None
    reason: str
    detail: str

    def summary(self) -> str:
        """Where and what: ``FILE:LINE: field 'KEY': DETAIL [REASON]`` (no fix)."""
        field = f" field {self.key!r}:" if self.key else ""
        return f"{self.path}:{self.line}:{field} {self.detail} [{self.reason}]"

    def message(self) -> str:
        return (f"{self.summary()}. Fix: {REASONS[self.reason]};"
                " or pass --skip-invalid to skip and count such records.")


class InvalidRecordError(ValueError):
    """A bad record in strict mode; ``str()`` names file, line, field, reason and the fix."""

    def __init__(self, issue: RecordIssue) -> None:
        super().__init__(issue.message())
        self.issue = issue


class InputFileError(OSError):
    """An input file that cannot be read at all (missing, not gzip, truncated gzip stream)."""


@dataclass(frozen=True)
class LineChunk:
    """Whole lines of one file, ``\n``-separated (the ``\n`` after the last one removed), starting at ``first_line``.

    ``unterminated`` is True when the last line ends the file without a newline (maybe a truncated record).
    """

    path: str
    first_line: int
    data: bytes
    unterminated: bool = False


@dataclass(frozen=True)
class LongLine:
    """A line over the size limit, reported without its bytes (they were never kept)."""

    path: str
    line: int
    size: int

    def issue(self, max_line_bytes: int) -> RecordIssue:
        return RecordIssue(self.path, self.line, None, "line_too_long",
                           f"line of {self.size} bytes is over the {max_line_bytes}-byte limit")


@dataclass
class ParsedChunk:
    """The records of one chunk: texts of the valid ones, issues of the others (``local`` = index in chunk).

    With a single key (raw documents) every text is in ``inputs`` and ``targets`` stays empty.
    """

    num_records: int = 0
    blank_lines: int = 0
    local: list[int] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    issues: list[tuple[int, RecordIssue]] = field(default_factory=list)


class _HashingReader:
    """A file wrapper that feeds every byte read to sha256 (so a .gz is hashed as stored on disk)."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw, self.sha256 = raw, hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.sha256.update(data)
        return data

    def drain(self) -> None:
        while self.read(READ_BLOCK):
            pass


class _RangeReader:
    """The first ``size`` bytes from a file's current position, as a file (EOF after them)."""

    def __init__(self, raw: BinaryIO, size: int) -> None:
        self.raw, self.left = raw, size

    def read(self, size: int = -1) -> bytes:
        size = self.left if size < 0 else min(size, self.left)
        data = self.raw.read(size)
        self.left -= len(data)
        return data

    def close(self) -> None:
        self.raw.close()


def iter_chunks(path: str | os.PathLike, max_line_bytes: int, chunk_bytes: int = READ_BLOCK,
                digest: list[str] | None = None, byte_range: tuple[int, int] | None = None
                ) -> Iterator[LineChunk | LongLine]:
    """Yield ``path`` (decompressing ``.gz``) as chunks of whole lines; append its sha256 to ``digest`` at the end.

    Memory stays bounded: a line growing past ``max_line_bytes`` is dropped as it is read and reported as a
    :class:`LongLine`. Shorter over-long lines inside a chunk are the parser's to report.
    ``byte_range=(start, end)`` reads only those bytes of a plain file (a shard's piece, starting at a line
    start; see ``dataset.preprocessing.shard_plan``): line numbers then count from 1 at ``start`` and the digest is the
    range's, and a BOM is stripped only at byte 0.
    """
    path = Path(path)
    try:
        raw = open(path, "rb")
    except OSError as exc:
        raise InputFileError(f"{path}: cannot open input ({exc.strerror}); check the --input path") from exc
    if byte_range is not None:
        raw.seek(byte_range[0])
        raw = _RangeReader(raw, byte_range[1] - byte_range[0])  # type: ignore[assignment]
    hashing = _HashingReader(raw)
    stream: BinaryIO = gzip.GzipFile(fileobj=hashing, mode="rb") if path.suffix == ".gz" else hashing  # type: ignore
    at_start = byte_range is None or byte_range[0] == 0
    try:
        yield from _chunk_lines(os.fspath(path), stream, max_line_bytes, chunk_bytes, strip_bom=at_start)
        hashing.drain()
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise InputFileError(f"{path}: cannot decompress input ({exc}); is the gzip file complete?") from exc
    finally:
        raw.close()
    if digest is not None:
        digest.append(hashing.sha256.hexdigest())


def _chunk_lines(name: str, stream: BinaryIO, max_line_bytes: int, chunk_bytes: int, strip_bom: bool = True
                 ) -> Iterator[LineChunk | LongLine]:
    line = 1  # number of the first line not yet yielded
    pieces: list[bytes] = []  # the unfinished line (a list: no quadratic concatenation)
    pending = 0
    dropping = -1  # size so far of a too-long line being skipped, or -1
    first = strip_bom
    while block := stream.read(chunk_bytes):
        if first:
            first = False
            block = block[len(BOM):] if block.startswith(BOM) else block
        if dropping >= 0:
            newline = block.find(b"\n")
            if newline < 0:
                dropping += len(block)
                continue
            yield LongLine(name, line, dropping + newline)
            line, dropping, block = line + 1, -1, block[newline + 1:]
        last = block.rfind(b"\n")
        if last < 0:
            pieces.append(block)
            pending += len(block)
            if pending > max_line_bytes:
                dropping, pieces, pending = pending, [], 0
            continue
        data = b"".join([*pieces, block[:last]]) if pieces else block[:last]
        rest = block[last + 1:]
        pieces, pending = ([rest], len(rest)) if rest else ([], 0)
        yield LineChunk(name, line, data)
        line += data.count(b"\n") + 1
    if dropping >= 0:
        yield LongLine(name, line, dropping)
    elif pending:
        yield LineChunk(name, line, b"".join(pieces), unterminated=True)


def is_blank(line: bytes) -> bool:
    return not line or line.isspace()


def count_records(paths: list[str], max_line_bytes: int) -> int:
    """How many records (non-blank lines) the files hold: the population of the hold-out draw."""
    total = 0
    for path in paths:
        for chunk in iter_chunks(path, max_line_bytes):
            if isinstance(chunk, LongLine):
                total += 1
            else:
                total += sum(1 for line in chunk.data.split(b"\n") if not is_blank(line))
    return total


def parse_record(data: bytes, keys: tuple[str, ...], path: str, number: int,
                 terminated: bool = True) -> tuple[str, ...] | RecordIssue:
    """The texts of one line, one per key (two for pairs, one for raw documents), or what is wrong with it."""
    def issue(reason: str, detail: str, key: str | None = None) -> RecordIssue:
        return RecordIssue(path, number, key, reason, detail)

    if NUL in data:
        return issue("nul_byte", f"NUL byte at byte {data.index(NUL)} of the line")
    try:
        # Fast path (a sixth of json's time): orjson checks UTF-8 and RFC 8259 strictly, so whatever it
        # accepts, json accepts with the same result; anything else takes the slow path below, which is
        # what decides the record's fate and words the error.
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            return issue("invalid_utf8", f"invalid UTF-8 at byte {exc.start} of the line")
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            if not terminated:
                return issue("truncated_last_line", f"last line has no newline and is not complete JSON ({exc.msg})")
            return issue("invalid_json", f"not valid JSON: {exc.msg} at column {exc.colno}")
    if type(obj) is not dict:
        return issue("not_an_object", f"the line is a JSON {type(obj).__name__}, not an object")
    texts = []
    for key in keys:
        if key not in obj and DEFAULT_TARGETS_ALIAS.get(key) in obj:  # None for a key without alias
            key = DEFAULT_TARGETS_ALIAS[key]
        if key not in obj:
            alias = f" (or {DEFAULT_TARGETS_ALIAS[key]!r})" if key in DEFAULT_TARGETS_ALIAS else ""
            present = ", ".join(map(repr, list(obj)[:8])) or "none"
            return issue("missing_key", f"no field {key!r}{alias}; the record has: {present}", key)
        value = obj[key]
        if value is None:
            return issue("null_key", "the field is null", key)
        if type(value) is not str:
            return issue("non_string_key", f"the field is a JSON {type(value).__name__}, not a string", key)
        if not value:
            return issue("empty_field", "the field is an empty string", key)
        if b"\\u" in data:  # only an escape can smuggle a NUL or a lone surrogate into a string
            if "\x00" in value:
                return issue("nul_byte", "the field contains a NUL character (\\u0000)", key)
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return issue("invalid_unicode", "the field contains a lone surrogate escape", key)
        texts.append(value)
    return tuple(texts)


def parse_chunk(chunk: LineChunk, keys: tuple[str, ...], max_line_bytes: int) -> ParsedChunk:
    """Validate every line of ``chunk``: blank lines are counted, every other line is one record."""
    parsed = ParsedChunk()
    lines = chunk.data.split(b"\n")
    last = len(lines) - 1
    for i, data in enumerate(lines):
        if is_blank(data):
            parsed.blank_lines += 1
            continue
        number = chunk.first_line + i
        if len(data) > max_line_bytes:
            result: tuple[str, ...] | RecordIssue = LongLine(chunk.path, number, len(data)).issue(max_line_bytes)
        else:
            result = parse_record(data, keys, chunk.path, number, not (chunk.unterminated and i == last))
        if isinstance(result, RecordIssue):
            parsed.issues.append((parsed.num_records, result))
        else:
            parsed.local.append(parsed.num_records)
            parsed.lines.append(number)
            parsed.inputs.append(result[0])
            parsed.targets.extend(result[1:])  # a single-key record has no targets
        parsed.num_records += 1
    return parsed
