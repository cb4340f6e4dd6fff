"""Docstring -> body pairs mined with ``ast`` from real Python source (by default the installed stdlib).

The code of ``python -m dataset.docstring_pairs``; how to run it and what it does: the docstring of its entry point
``dataset/docstring_pairs.py``.
"""
from __future__ import annotations

import argparse
import ast
import io
import random
import sys
import sysconfig
import time
import tokenize
import warnings
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Sequence

from tqdm import tqdm

from dataset.builders.octopack_format import (
    PairRecord, contains_special_token, docstring_record, claim_builder_output, finish_build,
)

DEFAULT_EXCLUDE_DIRS = ("site-packages", "__pycache__", "test", "tests", "idle_test")


@dataclass(frozen=True)
class DocstringPairSettings:
    seed: int = 1234
    max_records: int = 0  # 0 = all
    max_record_chars: int = 2000  # prompt + body, before framing
    max_file_bytes: int = 2_000_000
    filename_probability: float = 0.5
    exclude_dirs: tuple[str, ...] = DEFAULT_EXCLUDE_DIRS

    def __post_init__(self) -> None:
        if self.max_records < 0 or self.max_record_chars <= 0 or self.max_file_bytes <= 0:
            raise ValueError("max_records must be >= 0, max_record_chars and max_file_bytes > 0")
        if not 0.0 <= self.filename_probability <= 1.0:
            raise ValueError(f"filename_probability must be in [0, 1], got {self.filename_probability}")


@dataclass(frozen=True)
class FunctionPair:
    name: str
    prompt: str  # signature + docstring
    body: str


@dataclass
class DocstringPairs:
    records: list[PairRecord]
    skipped: Counter
    files: int
    pairs: int  # usable pairs before sampling


def default_roots() -> list[Path]:
    return [Path(sysconfig.get_paths()["stdlib"])]


def iter_python_files(roots: Sequence[Path], exclude_dirs: Sequence[str]) -> Iterator[Path]:
    """Every ``.py`` file under ``roots``, depth first in sorted name order (stable across machines and runs)."""
    for root in roots:
        if root.is_file():
            yield root
        elif root.is_dir():
            yield from _walk_sorted(root, exclude_dirs)
        else:
            raise FileNotFoundError(f"{root}: no such source folder; pass an existing directory to --roots")


def _walk_sorted(folder: Path, exclude_dirs: Sequence[str]) -> Iterator[Path]:
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.is_dir():
            if entry.name not in exclude_dirs and not entry.is_symlink():  # a symlink could loop
                yield from _walk_sorted(entry, exclude_dirs)
        elif entry.suffix == ".py" and entry.is_file():
            yield entry


def decode_source(data: bytes) -> str | None:
    """Source text honouring a PEP 263 coding cookie or BOM; None when it cannot be decoded."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        return data.decode(encoding)
    except (SyntaxError, UnicodeDecodeError, LookupError):
        return None


def extract_pairs(source: str, skipped: Counter) -> list[FunctionPair]:
    """The docstring -> body pairs of one module's source, in source order; reasons counted in ``skipped``.

    Raises SyntaxError/ValueError when the source does not parse.
    """
    # ast counts \n, \r\n and \r as line ends (not \f or U+2028), so split on exactly those.
    source = source.replace("\r\n", "\n").replace("\r", "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # invalid escape sequences and the like in old code
        tree = ast.parse(source)
    lines = source.split("\n")
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    functions.sort(key=lambda n: (n.lineno, n.col_offset))
    pairs = []
    for node in functions:
        first = node.body[0]
        if not (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)):
            skipped["no_docstring"] += 1
            continue
        if len(node.body) < 2:
            skipped["docstring_only"] += 1
            continue
        if node.body[1].lineno <= first.end_lineno:
            skipped["body_on_docstring_line"] += 1
            continue
        prompt = "\n".join(lines[node.lineno - 1: first.end_lineno]) + "\n"
        body = "\n".join(lines[first.end_lineno: node.end_lineno]) + "\n"
        pairs.append(FunctionPair(node.name, prompt, body))
    return pairs


def pair_skip(pair: FunctionPair, settings: DocstringPairSettings) -> str | None:
    if not pair.prompt.strip() or not pair.body.strip():
        return "whitespace_only"
    if len(pair.prompt) + len(pair.body) > settings.max_record_chars:
        return "too_long"
    if contains_special_token(pair.prompt) or contains_special_token(pair.body):
        return "special_token_in_text"
    return None


def build_docstring_pairs(roots: Sequence[Path], settings: DocstringPairSettings = DocstringPairSettings()) -> DocstringPairs:
    """Mine, filter, deduplicate and sample the pairs under ``roots`` (reads files, writes nothing)."""
    skipped: Counter = Counter()
    seen: set[tuple[str, str]] = set()
    usable: list[FunctionPair] = []
    files = list(iter_python_files(roots, settings.exclude_dirs))
    if not files:
        raise ValueError(f"no .py files under {', '.join(map(str, roots))} (folders skipped:"
                         f" {' '.join(settings.exclude_dirs)}); point --roots at folders of Python source")
    for path in tqdm(files, desc="docstring pairs", unit="file", disable=None):
        try:
            data = path.read_bytes()
        except OSError:
            skipped["unreadable_file"] += 1  # e.g. permissions on a system install
            continue
        if len(data) > settings.max_file_bytes:
            skipped["oversized_file"] += 1
            continue
        source = decode_source(data)
        if source is None:
            skipped["undecodable_file"] += 1
            continue
        try:
            pairs = extract_pairs(source, skipped)
        except (SyntaxError, ValueError, RecursionError):
            skipped["unparsable_file"] += 1
            continue
        for pair in pairs:
            reason = pair_skip(pair, settings)
            if reason is None and (pair.prompt, pair.body) in seen:
                reason = "duplicate"
            if reason:
                skipped[reason] += 1
                continue
            seen.add((pair.prompt, pair.body))
            usable.append(pair)
    rng = random.Random(settings.seed)
    chosen = list(usable)
    rng.shuffle(chosen)
    if settings.max_records and len(chosen) > settings.max_records:
        skipped["not_selected"] += len(chosen) - settings.max_records
        chosen = chosen[: settings.max_records]
    records = [
        docstring_record(pair.name if rng.random() < settings.filename_probability else None, pair.prompt, pair.body)
        for pair in chosen
    ]
    if not records:
        raise ValueError(f"no usable docstring pair in {len(files)} .py file(s) under {', '.join(map(str, roots))}"
                         f" (skipped: {', '.join(f'{k}={v}' for k, v in sorted(skipped.items())) or 'none'});"
                         " widen --roots or raise --max-record-chars")
    return DocstringPairs(records, skipped, len(files), len(usable))


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    defaults = DocstringPairSettings()
    parser = argparse.ArgumentParser(prog="python -m dataset.docstring_pairs", description=__doc__.split("\n")[0])
    parser.add_argument("--output", required=True, help="the jsonl file to write")
    parser.add_argument("--roots", nargs="+", type=Path, default=None, help="source folders (default: the stdlib)")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--max-records", type=int, default=defaults.max_records, help="0 = all")
    parser.add_argument("--max-record-chars", type=int, default=defaults.max_record_chars)
    parser.add_argument("--max-file-bytes", type=int, default=defaults.max_file_bytes)
    parser.add_argument("--filename-probability", type=float, default=defaults.filename_probability)
    parser.add_argument("--exclude-dir", nargs="*", default=None,
                        help=f"folder names not walked (default: {' '.join(DEFAULT_EXCLUDE_DIRS)})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    started = time.monotonic()
    roots = args.roots or default_roots()
    claim_builder_output(args.output, "dataset.docstring_pairs", inputs=roots)  # refused before any work
    try:
        settings = DocstringPairSettings(
            seed=args.seed, max_records=args.max_records, max_record_chars=args.max_record_chars,
            max_file_bytes=args.max_file_bytes, filename_probability=args.filename_probability,
            exclude_dirs=tuple(args.exclude_dir) if args.exclude_dir is not None else DEFAULT_EXCLUDE_DIRS,
        )
        result = build_docstring_pairs(roots, settings)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    facts = {"builder": "dataset.docstring_pairs", "roots": [str(r) for r in roots], "python": sys.version.split()[0],
             "settings": asdict(settings), "files": result.files, "usable_pairs": result.pairs}
    return finish_build(args.output, result.records, facts, result.skipped, started,
                        f"({result.pairs} usable pairs in {result.files} files)")
