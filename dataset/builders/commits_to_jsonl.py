"""OctoPack-format commit pairs from a local git repository's history.

The code of ``python -m dataset.commits_to_jsonl``; how to run it and what it does: the docstring of its entry point
``dataset/commits_to_jsonl.py``.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import get_args

from dataset.builders.git_history import Commit, FileChange, WalkMode, blob_sizes, read_blobs, read_commits
from dataset.builders.git_runner import GitError
from dataset.builders.octopack_format import (
    PairRecord, commit_record, contains_special_token, claim_builder_output, finish_build,
)

REGULAR_FILE_MODES = ("100644", "100755")
BINARY_SNIFF_BYTES = 8000  # git's buffer_is_binary() looks for a NUL in the first 8000 bytes
CHUNK = 256  # candidates whose blobs are read per `git cat-file --batch` call
_STATUS_SKIPS = {"A": "added_file", "D": "deleted_file", "R": "renamed_file", "C": "copied_file",
                 "T": "type_changed"}


@dataclass(frozen=True)
class CommitPairSettings:
    revision: str = "HEAD"
    walk: WalkMode = "first-parent"
    seed: int = 1234
    max_records: int = 0  # 0 = every usable change
    max_file_bytes: int = 100_000
    filename_probability: float = 0.5
    single_file_commits: bool = False

    def __post_init__(self) -> None:
        if self.walk not in get_args(WalkMode):
            raise ValueError(f"walk must be one of {get_args(WalkMode)}, got {self.walk!r}")
        if self.max_records < 0 or self.max_file_bytes <= 0:
            raise ValueError("max_records must be >= 0 and max_file_bytes > 0")
        if not 0.0 <= self.filename_probability <= 1.0:
            raise ValueError(f"filename_probability must be in [0, 1], got {self.filename_probability}")


@dataclass(frozen=True)
class Candidate:
    commit: str
    subject: str
    change: FileChange


@dataclass
class CommitPairs:
    records: list[PairRecord]
    skipped: Counter
    head: str
    commits: int
    candidates: int


def select_candidates(commits: list[Commit], settings: CommitPairSettings, skipped: Counter) -> list[Candidate]:
    """The modified regular files of usable commits, in git's order; everything else is counted in ``skipped``."""
    candidates = []
    for commit in commits:
        if commit.is_merge:
            skipped["merge_commit"] += 1
            continue
        if not commit.subject.strip():
            skipped["empty_subject"] += 1
            continue
        if settings.single_file_commits and len(commit.changes) != 1:
            skipped["multi_file_commit"] += 1
            continue
        for change in commit.changes:
            reason = _structural_skip(change)
            if reason:
                skipped[reason] += 1
            else:
                candidates.append(Candidate(commit.sha, commit.subject.strip(), change))
    return candidates


def _structural_skip(change: FileChange) -> str | None:
    if change.status != "M":
        return _STATUS_SKIPS.get(change.status, "other_status")
    if change.old_mode not in REGULAR_FILE_MODES or change.new_mode not in REGULAR_FILE_MODES:
        return "not_regular_file"  # symlinks (120000) and submodules (160000)
    if change.old_blob == change.new_blob:
        return "unchanged_content"  # a mode-only change
    return None


def content_skip(data: bytes, max_file_bytes: int) -> str | None:
    """Why a file's bytes cannot be one side of a pair, or None when they can."""
    if len(data) > max_file_bytes:
        return "oversized_file"
    if b"\x00" in data[:BINARY_SNIFF_BYTES]:
        return "binary_file"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "undecodable_utf8"
    if contains_special_token(text):
        return "special_token_in_text"
    return None


def build_commit_pairs(repo: str | os.PathLike, settings: CommitPairSettings = CommitPairSettings()) -> CommitPairs:
    """Walk ``repo``'s history and build the seeded selection of pairs (pure apart from reading git)."""
    commits = read_commits(repo, settings.revision, settings.walk)
    skipped: Counter = Counter()
    candidates = select_candidates(commits, settings, skipped)
    rng = random.Random(settings.seed)
    rng.shuffle(candidates)
    records: list[PairRecord] = []
    limit = settings.max_records or len(candidates)
    examined = 0
    while examined < len(candidates) and len(records) < limit:
        chunk = candidates[examined: examined + CHUNK]
        examined += len(chunk)
        sizes = blob_sizes(repo, [b for c in chunk for b in (c.change.old_blob, c.change.new_blob)])
        small = {c for c in chunk if max(sizes[c.change.old_blob], sizes[c.change.new_blob]) <= settings.max_file_bytes}
        contents = read_blobs(repo, [b for c in small for b in (c.change.old_blob, c.change.new_blob)])
        for position, candidate in enumerate(chunk):
            if len(records) == limit:
                examined -= len(chunk) - position  # the rest of the chunk was not looked at
                break
            change = candidate.change
            if candidate not in small:
                skipped["oversized_file"] += 1
                continue
            old, new = contents[change.old_blob], contents[change.new_blob]
            reason = content_skip(old, settings.max_file_bytes) or content_skip(new, settings.max_file_bytes)
            if reason:
                skipped[reason] += 1
                continue
            name = change.new_path.rsplit("/", 1)[-1] if rng.random() < settings.filename_probability else None
            records.append(commit_record(name, old.decode("utf-8"), candidate.subject, new.decode("utf-8")))
    if examined < len(candidates):
        skipped["not_examined"] += len(candidates) - examined
    head = commits[0].sha if commits else ""
    return CommitPairs(records, skipped, head, len(commits), len(candidates))


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m dataset.commits_to_jsonl", description=__doc__.split("\n")[0])
    defaults = CommitPairSettings()
    parser.add_argument("--repo", required=True, help="a local git repository (working tree or bare)")
    parser.add_argument("--output", required=True, help="the jsonl file to write")
    parser.add_argument("--revision", default=defaults.revision)
    parser.add_argument("--walk", choices=get_args(WalkMode), default=defaults.walk)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--max-records", type=int, default=defaults.max_records, help="0 = all")
    parser.add_argument("--max-file-bytes", type=int, default=defaults.max_file_bytes)
    parser.add_argument("--filename-probability", type=float, default=defaults.filename_probability)
    parser.add_argument("--single-file-commits", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    started = time.monotonic()
    claim_builder_output(args.output, "dataset.commits_to_jsonl", inputs=[args.repo])  # refused before any work
    try:
        settings = CommitPairSettings(
            revision=args.revision, walk=args.walk, seed=args.seed, max_records=args.max_records,
            max_file_bytes=args.max_file_bytes, filename_probability=args.filename_probability,
            single_file_commits=args.single_file_commits,
        )
        pairs = build_commit_pairs(args.repo, settings)
    except (GitError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    facts = {"builder": "dataset.commits_to_jsonl", "repo": str(Path(args.repo).resolve()), "head": pairs.head,
             "settings": asdict(settings), "commits": pairs.commits, "candidates": pairs.candidates}
    return finish_build(args.output, pairs.records, facts, pairs.skipped, started, f"from {pairs.commits} commits")
