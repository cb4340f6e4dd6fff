"""Base vs fine-tuned: the evaluation commands for a pair of Hugging Face folders, and their markdown report.

    for argv in comparison_commands(base_hf, tuned_hf, "out/demo/data/pairs_valid", "out/demo/eval", plan):
        evaluation.commands.main(argv)          # each is also `python -m evaluation ARGV`
    text = render_report(eval_dir, context)     # held-out loss, pass@k, infilling, commit fixes, side by side

``scripts/demo.py`` (step ``evaluate``) runs the commands and writes ``out/demo/report.md``; ``context`` adds
what the evaluation does not know itself (the commands of the whole run, the data manifest, the packing plan,
the loss-curve image). Every number in the report is read from a file the commands wrote. Library module.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

LABELS = ("base", "fine-tuned")


@dataclass(frozen=True)
class ComparisonPlan:
    """Small limits keep the demo's evaluation to a few minutes on 2 cores; a GPU run raises them."""

    problems: int = 10  # HumanEval problems generated for
    canonical_problems: int = 0  # the canonical-solution row: 0 = all 164
    samples: int = 5  # per problem, sampled at the harness's temperature 0.2 / top-p 0.95
    ks: tuple[int, ...] = (1, 5)
    max_new_tokens: int = 48
    infill_problems: int = 2
    commitfix_problems: int = 3
    workers: int = 2


def comparison_commands(base: Path, tuned: Path, valid_prefix: str, out: Path, plan: ComparisonPlan) -> list[list[str]]:
    """The ``python -m evaluation`` argv lists, in order; outputs land in ``out`` under fixed names."""
    ks, common = ",".join(map(str, plan.ks)), ["--workers", str(plan.workers), "--no-progress"]
    commands = [["loss", "--base", str(base), "--tuned", str(tuned), "--valid-prefix", valid_prefix,
                 "--out", str(out / "heldout_loss.json")],
                ["humaneval", "--canonical", "--out", str(out / "humaneval_canonical.json"), "--k", "1", *common,
                 *(["--limit", str(plan.canonical_problems)] if plan.canonical_problems else [])]]
    for label, model in zip(LABELS, (base, tuned)):
        commands.append(["humaneval", "--model", str(model), "--out", str(out / f"humaneval_{label}"),
                         "--limit", str(plan.problems), "--n", str(plan.samples), "--k", ks,
                         "--max-new-tokens", str(plan.max_new_tokens), "--batch-size", str(plan.problems * plan.samples // 2 or 1),
                         *common])
        commands.append(["infill", "--model", str(model), "--out", str(out / f"infill_{label}.json"),
                         "--limit", str(plan.infill_problems), "--max-new-tokens", "32", "--batch-size", "16", *common])
        commands.append(["commitfix", "--model", str(model), "--out", str(out / f"commitfix_{label}.json"),
                         "--limit", str(plan.commitfix_problems), "--max-new-tokens", "64", "--batch-size", "16",
                         *common])
    commands.append(["compare", "--base", str(base), "--tuned", str(tuned), "--out", str(out / "side_by_side.md"),
                     "--max-new-tokens", str(plan.max_new_tokens)])
    return commands


@dataclass
class ReportContext:
    title: str = "Evaluation report: base vs fine-tuned"
    commands: Sequence[str] = ()
    data_manifest: Path | None = None  # dataset.preprocess's manifest.json
    split_plan: Path | None = None  # dataset.splits plan's split_plan.json
    loss_curve: str | None = None  # image path relative to the report
    notes: list[str] = field(default_factory=list)


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
    parts += _humaneval_section(eval_dir)
    parts += _task_section(eval_dir, "infill", "Single-line infilling (FIM, PSM order, greedy)", exact=True)
    parts += _task_section(eval_dir, "commitfix", "Commit fixes (OctoPack format, greedy)", exact=False)
    side = eval_dir / "side_by_side.md"
    if side.is_file():
        parts += ["## Prompts side by side (greedy)\n", side.read_text(encoding="utf-8")]
    return "\n".join(parts)


def _humaneval_section(eval_dir: Path) -> list[str]:
    found = {label: _load(eval_dir / f"humaneval_{label}" / "results.json") for label in LABELS}
    canonical = _load(eval_dir / "humaneval_canonical.json")
    rows_in = {**{k: v for k, v in found.items() if v}, **({"canonical solutions": canonical} if canonical else {})}
    if not rows_in:
        return []
    ks = sorted({int(k[5:]) for r in rows_in.values() for k in r if k.startswith("pass@")})
    rows = [(label, *[r.get(f"pass@{k}", "-") for k in ks], r["problems"], r["samples"]) for label, r in rows_in.items()]
    settings = next((r["settings"] for r in found.values() if r), {})
    generation = settings.get("generation", {})
    note = (f"\nGenerated with n={generation.get('n')}, temperature {generation.get('temperature')}, top-p "
            f"{generation.get('top_p')}, at most {generation.get('max_new_tokens')} new tokens, the BigCode harness's "
            "stop sequences; sandboxed execution. Zero is an honest score for a tiny model; the canonical row "
            "shows the harness passes correct code.\n") if generation else ""
    return ["## HumanEval pass@k\n", table(("model", *[f"pass@{k}" for k in ks], "problems", "samples"), rows), note]


def _task_section(eval_dir: Path, name: str, title: str, exact: bool) -> list[str]:
    found = {label: _load(eval_dir / f"{name}_{label}.json") for label in LABELS}
    rows = [(label, r["pass@1"], *([r["exact_match"]] if exact else []), r["tasks"], r["problems"])
            for label, r in found.items() if r]
    if not rows:
        return []
    header = ("model", "pass@1", *(["exact match"] if exact else []), "tasks", "problems")
    return [f"## {title}\n", table(header, rows)]
