"""The subcommands of ``python -m evaluation`` (see ``evaluation/__main__.py`` for the synopsis).

Each subcommand is a function ``(args) -> int`` over parsed arguments; ``main(argv)`` parses and dispatches,
and turns bad input into a one-line error and exit status 2.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from guardrails.atomic_files import write_json_atomic
from guardrails.output_paths import claim_file
from guardrails.output_records import OutputKind, record_file_output
from evaluation.humaneval_score import format_scores, sandbox_settings, score_samples
from evaluation.humaneval_tasks import canonical_samples, load_problems, read_samples
from evaluation.sandbox import Sandbox, SandboxLimits, SandboxUnavailable
from runconfig.value_rules import DEVICE, POSITIVE, SEED, Bound, check_flags


class UsageError(ValueError):
    """A bad option value; the message says which and how to fix it."""


WRITTEN_BY = "python -m evaluation"  # every JSON output carries it (who wrote it, for a reader)


def output_kind(command: str) -> OutputKind:
    """The ``--out`` file of one subcommand; its record ``OUT.manifest.json`` proves it (``guardrails``)."""
    return OutputKind(f"an output of {WRITTEN_BY} {command}", f"evaluation {command}")


def check_replaceable(out: Path, command: str, inputs: tuple[Path | None, ...] = ()) -> None:
    """``out`` must be new or provably an earlier output of the same subcommand, and never one of its inputs."""
    claim_file(out, output_kind(command), "--out", inputs=inputs)


def write_output(out: Path, command: str, report: dict) -> None:
    """The JSON report, then its record."""
    write_json_atomic(out, report, indent=1)
    record_file_output(out, output_kind(command))


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
    if sum(x is not None and x is not False for x in (args.samples, args.model, args.canonical)) != 1:
        raise UsageError("give exactly one of --samples SAMPLES.jsonl (score), --model HF_DIR (generate, score) "
                         "and --canonical (score the reference solutions: a check of the harness)")
    ks = parse_ks(args.k)
    if args.model is None:
        check_replaceable(args.out, "humaneval", (args.samples,))
    problems = load_problems()
    sandbox = Sandbox(SandboxLimits(timeout_s=args.timeout))
    if args.model is not None:
        from evaluation.humaneval_generate import generate_and_score

        results = generate_and_score(args, problems, sandbox, ks)
    else:
        samples = read_samples(args.samples, problems) if args.samples else canonical_samples(problems, args.limit)
        results = score_samples(samples, problems, sandbox, ks, args.workers, not args.no_progress)
        results["settings"]["samples_file"] = str(args.samples) if args.samples else "canonical solutions"
        write_output(args.out, "humaneval", {"written_by": f"{WRITTEN_BY} humaneval", **results})
    print(f"{format_scores(results)} -> {args.out}")
    return 0


def _model_tasks(args: argparse.Namespace, run) -> int:
    from evaluation.generate import load_hf_model

    check_replaceable(args.out, args.command, (args.model,))
    problems = load_problems()
    sandbox = Sandbox(SandboxLimits(timeout_s=args.timeout))
    model, tokenizer, device = load_hf_model(args.model, args.device)
    summary = run(model, tokenizer, problems, sandbox, args.limit, args.workers, args.max_new_tokens,
                  args.batch_size, not args.no_progress)
    summary["settings"] = {"model": str(args.model), "device": str(device), "limit": args.limit,
                           "max_new_tokens": args.max_new_tokens, "timeout_s": args.timeout, "greedy": True,
                           "sandbox": sandbox_settings(sandbox)}
    write_output(args.out, args.command, {"written_by": f"{WRITTEN_BY} {args.command}", **summary})
    extra = f" exact_match={summary['exact_match']:.4f}" if "exact_match" in summary else ""
    print(f"pass@1={summary['pass@1']:.4f}{extra} over {summary['tasks']} tasks "
          f"({summary['problems']} problems) -> {args.out}")
    return 0


def infill(args: argparse.Namespace) -> int:
    from evaluation.task_runs import run_infilling

    return _model_tasks(args, run_infilling)


def commitfix(args: argparse.Namespace) -> int:
    from evaluation.task_runs import run_commit_fixes

    return _model_tasks(args, run_commit_fixes)


def compare(args: argparse.Namespace) -> int:
    from guardrails.atomic_files import write_text_atomic
    from evaluation.generate import load_hf_model
    from evaluation.side_by_side import complete_prompts, markdown_table

    check_replaceable(args.out, "compare", (args.base, args.tuned))
    models = {"base": load_hf_model(args.base, args.device)[:2], "fine-tuned": load_hf_model(args.tuned, args.device)[:2]}
    rows = complete_prompts(models, max_new_tokens=args.max_new_tokens)
    write_text_atomic(args.out, markdown_table(rows, list(models)))
    record_file_output(args.out, output_kind("compare"))
    print(f"{len(rows)} prompts, base vs fine-tuned -> {args.out}")
    return 0


def loss(args: argparse.Namespace) -> int:
    from evaluation.generate import load_hf_model
    from evaluation.heldout_loss import check_model_meets_data, heldout_loss

    from transformers import AutoConfig

    check_replaceable(args.out, "loss", (args.base, args.tuned, f"{args.valid_prefix}_inputs_document.bin",
                                          f"{args.valid_prefix}_targets_document.bin"))
    for path in (args.base, args.tuned):  # both checked before either model is loaded
        warning = check_model_meets_data(path, AutoConfig.from_pretrained(str(path)).vocab_size, args.valid_prefix)
        if warning:
            print(warning, file=sys.stderr)
    report: dict = {"written_by": f"{WRITTEN_BY} loss"}
    for label, path in (("base", args.base), ("fine-tuned", args.tuned)):
        model = load_hf_model(path, args.device)[0]
        report[label] = {**heldout_loss(model, args.valid_prefix, args.max_tokens or model.config.max_position_embeddings,
                                        args.max_pairs), "model": str(path)}
        print(f"{label}: held-out loss {report[label]['loss']:.4f} on {report[label]['tokens']} target tokens "
              f"({report[label]['pairs']} pairs, {report[label]['skipped_too_long']} too long, skipped)")
    write_output(args.out, "loss", report)
    return 0


def _model_parser(commands, name: str, help_text: str, func, max_new_tokens: int) -> None:
    parser = commands.add_parser(name, help=help_text)
    parser.add_argument("--model", type=Path, required=True, help="a Hugging Face GPT-BigCode folder")
    parser.add_argument("--out", type=Path, required=True, help="RESULTS.json")
    parser.add_argument("--limit", type=int, default=None, help="only the first N problems")
    parser.add_argument("--max-new-tokens", type=int, default=max_new_tokens)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="auto")
    add_sandbox_options(parser)
    parser.set_defaults(func=func)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m evaluation", description=(
        "Did the fine-tune help? HumanEval pass@k in a bubblewrap sandbox, infilling, commit fixes, prompts side by "
        "side, held-out loss. Exit status: 0 done, 2 bad input or no sandbox."))
    commands = parser.add_subparsers(dest="command", required=True)
    he = commands.add_parser("humaneval", help="HumanEval pass@k: score samples, or generate and score")
    he.add_argument("--samples", type=Path, help="completions to score (task_id, completion per line)")
    he.add_argument("--model", type=Path, help="a Hugging Face GPT-BigCode folder to generate with")
    he.add_argument("--canonical", action="store_true", help="score the canonical solutions (expect pass@1 = 1)")
    he.add_argument("--out", type=Path, required=True, help="RESULTS.json (with --samples) or a folder (--model)")
    he.add_argument("--k", default="1,10,100", help="pass@k for these k, when the sample count allows")
    add_sandbox_options(he)
    from evaluation.generation_options import add_generation_options

    add_generation_options(he)
    he.set_defaults(func=humaneval)
    _model_parser(commands, "infill", "single-line infilling (FIM, PSM) on HumanEval: pass@1 and exact match",
                  infill, 64)
    _model_parser(commands, "commitfix", "fix planted bugs, OctoPack commit format: pass@1", commitfix, 512)
    cmp = commands.add_parser("compare", help="fixed Python/Go/Rust prompts, base vs fine-tuned, markdown table")
    ls = commands.add_parser("loss", help="held-out loss on target tokens, base vs fine-tuned")
    for sub in (cmp, ls):
        sub.add_argument("--base", type=Path, required=True, help="the base model's Hugging Face folder")
        sub.add_argument("--tuned", type=Path, required=True, help="the fine-tuned model's Hugging Face folder")
        sub.add_argument("--out", type=Path, required=True)
        sub.add_argument("--device", default="auto")
    cmp.add_argument("--max-new-tokens", type=int, default=64)
    cmp.set_defaults(func=compare)
    ls.add_argument("--valid-prefix", required=True, help="the held-out split, e.g. out/demo/data/pairs_valid")
    ls.add_argument("--max-tokens", type=int, default=0, help="longest pair scored (0 = the model's context)")
    ls.add_argument("--max-pairs", type=int, default=None)
    ls.set_defaults(func=loss)
    return parser


# every numeric flag of every subcommand (those a subcommand lacks are skipped): what can be meant
FLAG_BOUNDS = {"limit": POSITIVE, "n": POSITIVE, "max_new_tokens": POSITIVE, "batch_size": POSITIVE,
               "workers": POSITIVE, "timeout": Bound(low=0, low_open=True, note="seconds per program"),
               "temperature": Bound(low=0, note="0 = greedy"), "top_p": Bound(low=0, high=1, low_open=True),
               "seed": SEED, "max_tokens": Bound(low=0, note="0 = the model's context"), "max_pairs": POSITIVE,
               "device": DEVICE}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_flags(args, FLAG_BOUNDS)  # --limit -3 would silently drop the last 3 problems
        if getattr(args, "device", "auto") not in ("auto", "cpu"):
            from evaluation.generate import resolve_device

            resolve_device(args.device)  # a GPU that is not here: refused before anything is claimed or loaded
        return args.func(args)
    except (ValueError, SandboxUnavailable, OSError) as exc:  # UsageError, SamplesFileError are ValueErrors
        print(f"error: {exc}", file=sys.stderr)
        return 2
