"""``python -m evaluation sweep --run SAVE --every K --out DIR``: evaluate a run's saved checkpoints, pick the best.

    python -m evaluation sweep --run out/demo/checkpoints --every 100 --out out/eval/sweep \\
        --language python --problems toy_python.jsonl --valid-prefix out/demo/data/pairs_valid --n 5 --k 1

Every ``iter_*`` checkpoint of the Megatron save folder whose iteration is a multiple of ``K`` (and the last
one) is converted on the fly to a Hugging Face folder (``conversion.megatron_to_hf.convert``; a hidden
temporary, removed after use), scored like ``humaneval --model`` (``DIR/iter_N/``: samples, results, settings),
and, with ``--valid-prefix``, its held-out loss on target tokens is measured. ``DIR/sweep.json`` lists
iteration, pass@k and loss; ``DIR/sweep.png`` plots pass@1 (with its bootstrap interval) and held-out loss
against the iteration, so a user can pick the checkpoint (as OctoPack picked theirs). ``sweep.json`` is also the
folder's record (``guardrails``): DIR is built whole in a temporary and appears at once, and an existing DIR is
replaced only when its record proves it an earlier sweep's. Library module behind ``evaluation.commands``.
"""
from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path

from guardrails.atomic_folder import atomic_output_dir
from guardrails.output_paths import claim_folder
from guardrails.output_records import OutputKind, write_record

ITERATION = re.compile(r"^iter_(\d{7})$")
SWEEP = OutputKind("an output folder of python -m evaluation sweep", "evaluation sweep", "sweep.json")
TEMPORARY = ".hf-checkpoint"  # inside the sweep's own temporary folder, removed after each checkpoint


def chosen_iterations(save: Path, every: int) -> list[int]:
    """Multiples of ``every`` among the saved iterations, and the last one."""
    found = sorted(int(m.group(1)) for p in save.iterdir() if p.is_dir() and (m := ITERATION.match(p.name)))
    if not found:
        raise ValueError(f"--run {save}: no iter_NNNNNNN checkpoint folders (give a training.save folder)")
    return sorted({i for i in found if i % every == 0} | {found[-1]})


def sweep(args: argparse.Namespace) -> int:
    from evaluation.commands import parse_ks, problem_set
    from evaluation.checkers import make_checker
    from evaluation.generation_tasks import humaneval_task

    iterations = chosen_iterations(args.run, args.every)
    ks = parse_ks(args.k)
    claim_folder(args.out, SWEEP, "--out", inputs=[args.run])
    problems, source = problem_set(args)
    task = humaneval_task(args.language)
    checker = make_checker(args.language, args.timeout, args.compile_timeout)
    with atomic_output_dir(args.out) as tmp:
        best = _sweep_into(tmp, args, iterations, problems, source, task, checker, ks)
    print(f"best pass@1 {best['pass@1']:.4f} at iteration {best['iteration']} -> {args.out / 'sweep.json'}")
    return 0


def _sweep_into(tmp: Path, args: argparse.Namespace, iterations: list[int], problems: dict, source: str, task,
                checker, ks) -> dict:
    from conversion.megatron_to_hf import convert
    from evaluation.generate import load_hf_model
    from evaluation.heldout_loss import heldout_loss
    from evaluation.humaneval_generate import generate_and_score
    from evaluation.paired_stats import bootstrap_interval, problem_rates
    from evaluation.report_plot import write_sweep_plot

    rows = []
    for iteration in iterations:
        hf = tmp / TEMPORARY
        convert(args.run, hf, tokenizer=args.tokenizer, tag=str(iteration), progress=False)
        try:
            run = argparse.Namespace(**{**vars(args), "model": hf, "out": tmp / f"iter_{iteration:07d}"})
            results = generate_and_score(run, problems, checker, ks, {"problems_source": source,
                                                                      "iteration": iteration}, task)
            row = {"iteration": iteration, **{k: v for k, v in results.items() if k.startswith("pass@")},
                   "pass@1_interval": bootstrap_interval(list(problem_rates(results["results"]).values())),
                   "problems": results["problems"], "subset": results["subset"]}
            if args.valid_prefix:
                model = load_hf_model(hf, args.device)[0]
                row["heldout_loss"] = heldout_loss(model, args.valid_prefix, model.config.max_position_embeddings,
                                                   args.max_pairs)["loss"]
        finally:
            shutil.rmtree(hf, ignore_errors=True)
        rows.append(row)
        print(f"iteration {iteration}: pass@1={row['pass@1']:.4f}"
              + (f" held-out loss={row['heldout_loss']:.4f}" if "heldout_loss" in row else ""))
    best = max(rows, key=lambda r: (r["pass@1"], -r.get("heldout_loss", 0.0)))
    subset = rows[0]["subset"]  # every checkpoint ran the same problems
    write_sweep_plot(rows, tmp / "sweep.png", f"{task.name} {args.language}"
                     + (f" - SUBSET: {subset.removeprefix('subset: ')}" if subset else ""))
    write_record(tmp / SWEEP.record, SWEEP, tmp, facts={  # last: it lists every file above
        "written_by": "python -m evaluation sweep", "run": str(args.run), "language": args.language,
        "problems_source": source, "best_iteration": best["iteration"], "checkpoints": rows}, indent=1)
    return best


def add_sweep_parser(commands) -> None:
    from evaluation.commands import add_sandbox_options
    from evaluation.generation_options import add_generation_options
    from evaluation.problem_files import LANGUAGES

    parser = commands.add_parser("sweep", help="evaluate a run's saved checkpoints; plot pass@1 and held-out loss")
    parser.add_argument("--run", type=Path, required=True, help="a Megatron save folder (iter_*/ checkpoints)")
    parser.add_argument("--every", type=int, required=True, help="evaluate iterations that are multiples of K")
    parser.add_argument("--out", type=Path, required=True, help="a folder: iter_N/, sweep.json, sweep.png")
    parser.add_argument("--tokenizer", help="tokenizer.json for the conversion (default: the checkpoint's)")
    parser.add_argument("--language", choices=LANGUAGES, default="python")
    parser.add_argument("--problems", help="problems file (default for Python: HumanEval)")
    parser.add_argument("--valid-prefix", help="also measure held-out loss on this split (e.g. out/demo/data/pairs_valid)")
    parser.add_argument("--max-pairs", type=int, default=None, help="held-out loss on the first N pairs only")
    parser.add_argument("--k", default="1", help="pass@k for these k")
    parser.add_argument("--compile-timeout", type=float, default=None)
    add_sandbox_options(parser, timeout=None)
    add_generation_options(parser)
    parser.set_defaults(func=sweep)
