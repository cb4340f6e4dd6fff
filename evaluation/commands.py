"""The subcommands of ``python -m evaluation`` (see ``evaluation/__main__.py`` for the synopsis).

Each subcommand is a function ``(args) -> int`` over parsed arguments; ``main(argv)`` parses and dispatches,
and turns bad input into a one-line error and exit status 2.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from dataset.atomic_files import write_json_atomic
from evaluation.humaneval_score import format_scores, score_samples
from evaluation.humaneval_tasks import load_problems, read_samples
from evaluation.sandbox import Sandbox, SandboxLimits, SandboxUnavailable


class UsageError(ValueError):
    """A bad option value; the message says which and how to fix it."""


def parse_ks(text: str) -> list[int]:
    try:
        ks = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        ks = []
    if not ks or ks[0] < 1:
        raise UsageError(f"--k {text!r}: give positive integers separated by commas, e.g. --k 1,10,100")
    return ks


def add_sandbox_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds per program (wall clock)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="programs run in parallel")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def humaneval(args: argparse.Namespace) -> int:
    if (args.samples is None) == (args.model is None):
        raise UsageError("give exactly one of --samples SAMPLES.jsonl (score) and --model HF_DIR (generate, score)")
    ks = parse_ks(args.k)
    problems = load_problems()
    sandbox = Sandbox(SandboxLimits(timeout_s=args.timeout))
    if args.model is not None:
        from evaluation.humaneval_generate import generate_and_score

        results = generate_and_score(args, problems, sandbox, ks)
    else:
        samples = read_samples(args.samples, problems)
        results = score_samples(samples, problems, sandbox, ks, args.workers, not args.no_progress)
        results["settings"]["samples_file"] = str(args.samples)
        write_json_atomic(args.out, results, indent=1)
    print(f"{format_scores(results)} -> {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m evaluation", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    he = commands.add_parser("humaneval", help="HumanEval pass@k: score samples, or generate and score")
    he.add_argument("--samples", type=Path, help="completions to score (task_id, completion per line)")
    he.add_argument("--model", type=Path, help="a Hugging Face GPT-BigCode folder to generate with")
    he.add_argument("--out", type=Path, required=True, help="RESULTS.json (with --samples) or a folder (--model)")
    he.add_argument("--k", default="1,10,100", help="pass@k for these k, when the sample count allows")
    add_sandbox_options(he)
    from evaluation.generation_options import add_generation_options

    add_generation_options(he)
    he.set_defaults(func=humaneval)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, SandboxUnavailable, OSError) as exc:  # UsageError, SamplesFileError are ValueErrors
        print(f"error: {exc}", file=sys.stderr)
        return 2
