"""Raw source files -> ``{"content": ...}`` jsonl, the input of continued pretraining with FIM.

The code of ``python -m dataset.code_to_jsonl``; how to run it and what it does: the docstring of its entry point
``dataset/code_to_jsonl.py``.
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

from dataset.builders.commits_to_jsonl import REGULAR_FILE_MODES, content_skip
from dataset.builders.git_history import blob_sizes, read_blobs
from dataset.builders.git_runner import GitError, run_git
from dataset.builders.octopack_format import FILENAME, claim_builder_output, finish_build, json_line

DEFAULT_EXTENSIONS = (".py",)
DEFAULT_EXCLUDE_DIRS = (".git", "__pycache__", "node_modules", ".venv", "venv", "site-packages")
CHUNK = 256  # blobs read per `git cat-file --batch` call


@dataclass(frozen=True)
class CodeRecord:
    """One jsonl line: one source file."""

    content: str

    def to_json_line(self) -> str:
        return json_line({"content": self.content})


@dataclass(frozen=True)
class CodeSettings:
    extensions: tuple[str, ...] = DEFAULT_EXTENSIONS  # "" matches every file
    max_file_bytes: int = 200_000
    min_file_bytes: int = 1
    filename_prefix: bool = False
    exclude_dirs: tuple[str, ...] = DEFAULT_EXCLUDE_DIRS
    max_records: int = 0  # 0 = all
    seed: int = 1234
    shuffle: bool = True

    def __post_init__(self) -> None:
        if self.max_file_bytes <= 0 or self.min_file_bytes < 0 or self.max_records < 0:
            raise ValueError("max_file_bytes must be > 0, min_file_bytes and max_records >= 0")
        if any(e and not e.startswith(".") for e in self.extensions):
            raise ValueError(f"extensions start with a dot (.py), got {list(self.extensions)}")


@dataclass
class CodeCorpus:
    records: list[CodeRecord]
    skipped: Counter
    files: int  # files seen (every kind)
    paths: list[str]  # the path of each record, in output order


def wanted_extension(path: str, settings: CodeSettings) -> bool:
    return "" in settings.extensions or any(path.endswith(e) for e in settings.extensions)


def _walk(folder: Path, root: Path, settings: CodeSettings, skipped: Counter) -> Iterator[tuple[str, Path]]:
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.is_symlink():
            skipped["not_regular_file"] += 1  # a symlink could loop, or point outside the source
        elif entry.is_dir():
            if entry.name in settings.exclude_dirs:
                skipped["excluded_dir"] += 1
            else:
                yield from _walk(entry, root, settings, skipped)
        elif entry.is_file():
            yield entry.relative_to(root).as_posix(), entry
        else:  # a FIFO (reading it would block), a socket, a device: never source code
            skipped["not_regular_file"] += 1


def folder_files(root: Path, settings: CodeSettings, skipped: Counter) -> Iterator[tuple[str, int, bytes | None]]:
    """``(relative path, size, bytes)`` of every file under ``root`` in path order; the bytes are None when
    the file was not read (another extension, oversized)."""
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder; pass an existing directory to --source")
    for rel, path in _walk(root, root, settings, skipped):
        try:
            size = path.stat().st_size
            wanted = wanted_extension(rel, settings) and size <= settings.max_file_bytes
            yield rel, size, path.read_bytes() if wanted else None
        except OSError:
            skipped["unreadable_file"] += 1


def git_files(repo: Path, revision: str, settings: CodeSettings,
              skipped: Counter) -> Iterator[tuple[str, int, bytes | None]]:
    """The same for every tracked file at ``revision`` (``git ls-tree -r -z``), in path order."""
    listing = run_git(repo, ["ls-tree", "-r", "-z", "--full-tree", revision])
    entries = []
    for item in listing.split(b"\0"):
        if not item:
            continue
        meta, path = item.decode("utf-8", "surrogateescape").split("\t", 1)
        mode, _, blob = meta.split(" ")
        if mode not in REGULAR_FILE_MODES:
            skipped["not_regular_file"] += 1  # symlinks (120000), submodules (160000)
        elif any(part in settings.exclude_dirs for part in path.split("/")[:-1]):
            skipped["excluded_dir"] += 1
        else:
            entries.append((path, blob))
    entries.sort()
    for start in range(0, len(entries), CHUNK):
        chunk = entries[start:start + CHUNK]
        sizes = blob_sizes(repo, [b for p, b in chunk])
        contents = read_blobs(repo, [b for p, b in chunk
                                     if wanted_extension(p, settings) and sizes[b] <= settings.max_file_bytes])
        for path, blob in chunk:
            yield path, sizes[blob], contents.get(blob)


def build_code_corpus(source: Path, settings: CodeSettings = CodeSettings(), revision: str | None = None) -> CodeCorpus:
    """Read, filter, deduplicate and order the files of ``source`` (reads files, writes nothing)."""
    skipped: Counter = Counter()
    files = git_files(source, revision, settings, skipped) if revision else folder_files(source, settings, skipped)
    seen: set[str] = set()
    kept: list[tuple[str, str]] = []
    count = 0
    for path, size, data in files:
        count += 1
        reason = file_skip(path, size, data, settings)
        text = data.decode("utf-8") if reason is None and data is not None else ""
        if reason is None and text in seen:
            reason = "duplicate"
        if reason:
            skipped[reason] += 1
            continue
        seen.add(text)
        kept.append((path, text))
    if settings.shuffle:
        random.Random(settings.seed).shuffle(kept)
    if settings.max_records and len(kept) > settings.max_records:
        skipped["not_selected"] += len(kept) - settings.max_records
        kept = kept[:settings.max_records]
    records = [CodeRecord(f"{FILENAME}{path}\n{text}" if settings.filename_prefix else text) for path, text in kept]
    return CodeCorpus(records, skipped, count, [path for path, _ in kept])


def file_skip(path: str, size: int, data: bytes | None, settings: CodeSettings) -> str | None:
    """Why a file does not become a record, or None when it does."""
    if not wanted_extension(path, settings):
        return "other_extension"
    if settings.filename_prefix and not _utf8_name(path):
        return "undecodable_file_name"  # the name goes into the record, which is UTF-8 text
    if size > settings.max_file_bytes or data is None:
        return "oversized_file"
    reason = content_skip(data, settings.max_file_bytes)  # binary, not UTF-8, special token
    if reason is None and (len(data) < settings.min_file_bytes or not data.strip()):
        return "empty_file"
    return reason


def _utf8_name(path: str) -> bool:
    """False for a name that is not UTF-8 on disk (Python holds its bad bytes as surrogates)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    defaults = CodeSettings()
    parser = argparse.ArgumentParser(prog="python -m dataset.code_to_jsonl", description=__doc__.split("\n")[0])
    parser.add_argument("--source", required=True, type=Path, help="a folder, or a git repository with --revision")
    parser.add_argument("--output", required=True, help="the jsonl file to write")
    parser.add_argument("--revision", default=None, help="read the git repository at this revision (e.g. HEAD)")
    parser.add_argument("--extensions", nargs="+", default=list(defaults.extensions),
                        help="file name endings to keep ('' keeps every file); default .py")
    parser.add_argument("--max-file-bytes", type=int, default=defaults.max_file_bytes)
    parser.add_argument("--min-file-bytes", type=int, default=defaults.min_file_bytes)
    parser.add_argument("--filename-prefix", action="store_true", help='start each record with "<filename>PATH\\n"')
    parser.add_argument("--exclude-dir", nargs="*", default=None,
                        help=f"folder names not read (default: {' '.join(DEFAULT_EXCLUDE_DIRS)})")
    parser.add_argument("--max-records", type=int, default=defaults.max_records, help="0 = all")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of the file order shuffle")
    parser.add_argument("--no-shuffle", action="store_true", help="keep path order")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    started = time.monotonic()
    claim_builder_output(args.output, "dataset.code_to_jsonl", inputs=[args.source])  # refused before any work
    try:
        settings = CodeSettings(
            extensions=tuple(args.extensions), max_file_bytes=args.max_file_bytes,
            min_file_bytes=args.min_file_bytes, filename_prefix=args.filename_prefix,
            exclude_dirs=tuple(args.exclude_dir) if args.exclude_dir is not None else DEFAULT_EXCLUDE_DIRS,
            max_records=args.max_records, seed=args.seed, shuffle=not args.no_shuffle,
        )
        corpus = build_code_corpus(args.source, settings, args.revision)
    except (GitError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not corpus.records:
        print(f"error: {args.source}: no file passed the filters (skipped: {dict(corpus.skipped)}); check "
              "--extensions and --max-file-bytes. Nothing was written.", file=sys.stderr)
        return 2
    head = run_git(args.source, ["rev-parse", args.revision]).decode().strip() if args.revision else None
    facts = {"builder": "dataset.code_to_jsonl", "source": str(args.source.resolve()), "revision": args.revision,
             "head": head, "settings": asdict(settings), "files": corpus.files}
    return finish_build(args.output, corpus.records, facts, corpus.skipped, started, f"from {corpus.files} files")
