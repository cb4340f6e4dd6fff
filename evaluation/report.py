"""Base vs fine-tuned: the evaluation commands for a pair of Hugging Face folders, and their markdown report.

    for argv in comparison_commands(base_hf, tuned_hf, "out/demo/data/pairs_valid", "out/demo/eval", plan):
        evaluation.commands.main(argv)          # each is also `python -m evaluation ARGV`
    text = render_report(eval_dir, context)     # held-out loss, harness checks, base vs tuned per benchmark...

``scripts/demo.py`` (step ``evaluate``) runs the commands and writes ``out/demo/report.md``; ``context`` adds
what the evaluation does not know itself (the commands of the whole run, the data manifest, the packing plan,
the loss-curve image, where the plot goes). Every number in the report is read from a file the commands wrote.
Outputs in the evaluation folder: ``heldout_loss.json``; ``checks/`` (canonical and wrong solutions scored: the
harness works in every language); ``base/RUN`` and ``fine-tuned/RUN`` (generated and scored, compared by
``evaluation.comparison_report``: the TOY task family of ``evaluation.toy_tasks`` when a toy folder is given,
and a labelled subset of HumanEval); the greedy infilling, planted-bug fixes and side-by-side prompts.
Library module.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from guardrails.file_set import FileSet
from evaluation.comparison_report import comparison_sections
from evaluation.evaluated_runs import find_runs, pair_runs
from evaluation.humaneval_score import problems_cell

LABELS = ("base", "fine-tuned")


@dataclass(frozen=True)
class ComparisonPlan:
    """Small limits keep the demo's evaluation to a few minutes on 2 cores; a GPU run raises them."""

    toy_dir: Path | None = None  # a folder written by `python -m evaluation toy`; None: no toy rows
    toy_languages: tuple[str, ...] = ("python", "go")  # generated for, base and tuned
    check_languages: tuple[str, ...] = ("python", "go", "rust")  # canonical and wrong solutions of the toy scored
    toy_samples: int = 5  # per problem, at the harness's temperature 0.2 / top-p 0.95
    toy_max_length: int = 64  # prompt + generation (the harness's budget, shortened for one-line bodies)
    problems: int = 5  # HumanEval problems generated for (a labelled SUBSET)
    samples: int = 2
    canonical_problems: int = 0  # the HumanEval canonical row: 0 = all 164
    infill_problems: int = 2
    mutantfix_problems: int = 3
    workers: int = 2


def _generate(label: str, model: Path, out: Path, run: str, extra: list[str]) -> list[str]:
    return ["humaneval", "--model", str(model), "--out", str(out / label / run), *extra]


def comparison_commands(base: Path, tuned: Path, valid_prefix: str, out: Path, plan: ComparisonPlan) -> list[list[str]]:
    """The ``python -m evaluation`` argv lists, in order; outputs land in ``out`` under fixed names."""
    common = ["--workers", str(plan.workers), "--no-progress"]
    checks = out / "checks"
    commands = [["loss", "--base", str(base), "--tuned", str(tuned), "--valid-prefix", valid_prefix,
                 "--out", str(out / "heldout_loss.json")],
                ["humaneval", "--canonical", "--out", str(checks / "humaneval_python_canonical.json"), "--k", "1", *common,
                 *(["--limit", str(plan.canonical_problems)] if plan.canonical_problems else [])]]
    if plan.toy_dir is not None:
        for language in plan.check_languages:
            problems = ["--language", language, "--problems", str(plan.toy_dir / f"toy_{language}.jsonl"), "--k", "1"]
            commands.append(["humaneval", *problems, "--canonical", "--out", str(checks / f"toy_{language}_canonical.json"),
                             *common])
            commands.append(["humaneval", *problems, "--samples", str(plan.toy_dir / f"toy_{language}_wrong.jsonl"),
                             "--out", str(checks / f"toy_{language}_wrong.json"), *common])
    for label, model in zip(LABELS, (base, tuned)):
        if plan.toy_dir is not None:
            for language in plan.toy_languages:
                commands.append(_generate(label, model, out, f"toy-{language}", [
                    "--language", language, "--problems", str(plan.toy_dir / f"toy_{language}.jsonl"),
                    "--n", str(plan.toy_samples), "--k", f"1,{plan.toy_samples}", "--max-length-generation",
                    str(plan.toy_max_length), "--batch-size", "40", *common]))
        commands.append(_generate(label, model, out, "humaneval-python", [
            "--limit", str(plan.problems), "--n", str(plan.samples), "--k", f"1,{plan.samples}",
            "--batch-size", str(plan.problems * plan.samples), *common]))
        commands.append(["infill", "--model", str(model), "--out", str(out / f"infill_{label}.json"),
                         "--limit", str(plan.infill_problems), "--max-new-tokens", "32", "--batch-size", "16", *common])
        commands.append(["mutantfix", "--model", str(model), "--out", str(out / f"mutantfix_{label}.json"),
                         "--limit", str(plan.mutantfix_problems), "--max-new-tokens", "64", "--batch-size", "16",
                         *common])
    commands.append(["compare", "--base", str(base), "--tuned", str(tuned), "--out", str(out / "side_by_side.md"),
                     "--max-new-tokens", "48"])
    return commands


def generated_runs(commands: Sequence[Sequence[str]]) -> dict[str, list[Path]]:
    """label -> the ``--out`` folders of the generating commands of ``comparison_commands``, in order: the runs the
    report compares (only these: an older run left in the same folder by another plan is never read)."""
    runs: dict[str, list[Path]] = {label: [] for label in LABELS}
    for argv in commands:
        if argv[0] == "humaneval" and "--model" in argv:
            out = Path(argv[list(argv).index("--out") + 1])
            runs[out.parent.name].append(out)
    return runs


@dataclass
class ReportContext:
    title: str = "Evaluation report: base vs fine-tuned"
    commands: Sequence[str] = ()
    data_manifest: Path | None = None  # dataset.preprocess's manifest.json
    split_plan: Path | None = None  # dataset.splits plan's split_plan.json
    loss_curve: str | None = None  # image path relative to the report
    notes: list[str] = field(default_factory=list)
    plot: Path | None = None  # where the pass@1 plot is written (beside the report)
    files: FileSet | None = None  # the report's file set: the plot goes to its temporary, in place with the report
    runs: dict[str, list[Path]] | None = None  # label -> the runs to compare (generated_runs); None: all under eval/


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(value: object) -> str:
        return f"{value:.4f}" if isinstance(value, float) else str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def data_section(manifest: dict) -> str:
    rows = [(split, out["prefix"], out["documents"], out["tokens"].get("inputs", 0), out["tokens"].get("targets", 0))
            for split, out in manifest["outputs"].items()]
    skipped = sum(manifest.get("skipped", {}).values())
    return (table(("split", "prefix", "documents", "input tokens", "target tokens"), rows)
            + f"\nRecords in: {manifest['records_in']}, written: {manifest['records_written']}, skipped: {skipped}.\n")


def plan_section(plan: dict) -> str:
    rows = [(d["split"], Path(d["prefix"]).name, d["documents"], d["tokens"], d["rows_per_epoch"], d["overlong_pairs"],
             d["num_samples"], d["epochs_needed"]) for d in plan["datasets"]]
    warnings = "".join(f"\n> {w}\n" for w in plan.get("warnings", []))
    return table(("split", "prefix", "docs", "tokens", "rows/epoch", "too long", "samples", "epochs"), rows) + warnings


def render_report(eval_dir: Path, context: ReportContext) -> str:
    parts = [f"# {context.title}\n", f"Written {time.strftime('%Y-%m-%d %H:%M:%S %Z')}. Every number below was "
             "measured in this run and read from the files in `" + str(eval_dir) + "`.\n", *context.notes]
    if context.commands:
        parts += ["## Commands run\n", "```bash\n" + "\n".join(context.commands) + "\n```\n"]
    manifest = _load(context.data_manifest) if context.data_manifest else None
    if manifest:
        parts += ["## Data\n", data_section(manifest)]
    plan = _load(context.split_plan) if context.split_plan else None
    if plan:
        parts += ["## Packing plan\n", plan_section(plan)]
    if context.loss_curve:
        parts += ["## Training loss\n", f"![training and validation loss]({context.loss_curve})\n"]
    loss = _load(eval_dir / "heldout_loss.json")
    if loss:
        rows = [(label, loss[label]["loss"], loss[label]["tokens"], loss[label]["pairs"],
                 loss[label]["skipped_too_long"]) for label in LABELS if label in loss]
        verdict = "went down" if loss["fine-tuned"]["loss"] < loss["base"]["loss"] else "did NOT go down"
        parts += ["## Held-out loss (target tokens of the validation prefix)\n",
                  table(("model", "loss", "target tokens", "pairs", "skipped (too long)"), rows),
                  f"\nThe held-out loss {verdict} with fine-tuning.\n"]
    parts += _checks_section(eval_dir / "checks")
    parts += _comparison(eval_dir, context)
    parts += _task_section(eval_dir, "infill", "Single-line infilling (FIM, PSM order, greedy; HumanEval-Single"
                           "LineInfilling's layout)", exact=True)
    parts += _task_section(eval_dir, "mutantfix", "Planted-bug fixes (synthetic mutations of HumanEval solutions, "
                           "OctoPack's commit format, greedy; NOT HumanEvalFix)", exact=False)
    side = eval_dir / "side_by_side.md"
    if side.is_file():
        parts += ["## Prompts side by side (greedy)\n", side.read_text(encoding="utf-8")]
    return "\n".join(parts)


def _checks_section(checks: Path) -> list[str]:
    """Canonical solutions must pass and wrong ones fail, in every language: the harness itself works."""
    rows = []
    for path in sorted(checks.glob("*_canonical.json")) if checks.is_dir() else []:
        canonical, wrong = _load(path), _load(path.with_name(path.name.replace("_canonical", "_wrong")))
        name = path.name.removesuffix("_canonical.json")
        benchmark = "TOY arithmetic" if name.startswith("toy_") else "HumanEval"
        rows.append((benchmark, canonical["language"], canonical["pass@1"], wrong["pass@1"] if wrong else "-",
                     canonical["problems"], canonical.get("subset") or "all"))
    if not rows:
        return []
    return ["## Harness checks: canonical solutions pass, wrong ones fail\n",
            table(("benchmark", "language", "canonical pass@1", "wrong-solution pass@1", "problems", "problem set"), rows),
            "\nThe canonical row must read 1.0 and the wrong one 0.0 in every language: the programs are assembled, "
            "compiled and judged as the harnesses do, inside the sandbox.\n"]


def _comparison(eval_dir: Path, context: ReportContext) -> list[str]:
    if not all((eval_dir / label).is_dir() for label in LABELS):
        return []
    found = {label: find_runs(context.runs[label] if context.runs else [eval_dir / label]) for label in LABELS}
    pairs, unmatched = pair_runs(found[LABELS[0]], found[LABELS[1]])
    plot_name = context.plot.name if context.plot else None
    sections, plot_rows = comparison_sections(pairs, unmatched, plot_name)
    if context.plot and plot_rows:
        from evaluation.report_plot import write_pass_at_1_plot

        if context.files is None:
            write_pass_at_1_plot(plot_rows, context.plot)
        else:
            write_pass_at_1_plot(plot_rows, context.files.temporary(context.plot), atomic=False)
    toy = any(Path(b.source).name.startswith("toy_") for b, _ in pairs)
    note = ("\n> The **TOY** rows are a task family made for this demo (`python -m evaluation toy`: arithmetic "
            "one-liners from templates, the fine-tuning pairs from the same templates but never the test problems). "
            "They show that fine-tuning moved the model, nothing about real coding ability. The HumanEval rows are "
            "the real benchmark on a SUBSET, where a tiny model honestly scores 0.\n") if toy else ""
    return [*sections[:1], note, *sections[1:]]


def _task_section(eval_dir: Path, name: str, title: str, exact: bool) -> list[str]:
    found = {label: _load(eval_dir / f"{name}_{label}.json") for label in LABELS}
    rows = [(label, r["pass@1"], *([r["exact_match"]] if exact else []), r["tasks"], problems_cell(r))
            for label, r in found.items() if r]
    if not rows:
        return []
    header = ("model", "pass@1", *(["exact match"] if exact else []), "tasks", "problems")
    return [f"## {title}\n", table(header, rows)]
