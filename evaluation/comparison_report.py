"""Base vs fine-tuned, per benchmark and language: the markdown a user can act on, from two sets of evaluated runs.

    sections, plot_rows = comparison_sections(pairs, unmatched)   # pairs from evaluation.evaluated_runs.pair_runs

For every pair: pass@k of both models, pass@1 with a 95% bootstrap interval, the paired difference with its
interval (``evaluation.paired_stats``), the problems that flipped either way, why samples failed (syntax or
compile error, wrong answer, runtime error, timeout, stopped by the length budget), and a few completions side
by side for flipped problems. A run over part of a benchmark says so in its row. Published numbers of
recognised models (``evaluation.published_scores``) come in a table of their own, marked *published, not
measured here*. Library module behind ``python -m evaluation report`` and the demo's report.
"""
from __future__ import annotations

from typing import Sequence

from evaluation.evaluated_runs import Run
from evaluation.humaneval_score import problems_cell
from evaluation.paired_stats import (REASONS, bootstrap_interval, failure_counts, flipped, paired_difference,
                                     problem_rates)
from evaluation.published_scores import HUMANEVALFIX_SOURCE, published_rows
from evaluation.side_by_side import code_cell

SHOWN_FLIPS = 3  # completions side by side per pair and direction


def _ks(run: Run) -> list[int]:
    return sorted(int(k[5:]) for k in run.results if k.startswith("pass@"))


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def _interval(low: float, high: float) -> str:
    return f"[{_pct(low)}, {_pct(high)}]"


def _where(run: Run) -> str:
    return problems_cell(run.results)


def _completion(run: Run, task_id: str, passed: bool | None) -> str:
    """A sample of ``task_id`` (a passing one when ``passed``, else the first), from samples.jsonl."""
    entries = [(e, s) for e, s in zip(run.results["results"], run.samples) if e["task_id"] == task_id]
    chosen = next(((e, s) for e, s in entries if passed is None or e["passed"] == passed), entries[0] if entries else None)
    if chosen is None:
        return "(no sample stored)"
    entry, sample = chosen
    return sample.get("harness_completion", sample.get("completion", ""))


def _pair_numbers(base: Run, tuned: Run) -> dict:
    base_rates, tuned_rates = problem_rates(base.results["results"]), problem_rates(tuned.results["results"])
    better, worse = flipped(base_rates, tuned_rates)
    return {"base_rates": base_rates, "tuned_rates": tuned_rates, "better": better, "worse": worse,
            "diff": paired_difference(base_rates, tuned_rates),
            "base_ci": bootstrap_interval(list(base_rates.values())),
            "tuned_ci": bootstrap_interval(list(tuned_rates.values()))}


def comparison_sections(pairs: Sequence[tuple[Run, Run]], unmatched: Sequence[str] = (),
                        plot: str | None = None) -> tuple[list[str], list[dict]]:
    if not pairs:
        return (["## Base vs fine-tuned\n", "No pair of runs to compare.\n", *[f"- {u}\n" for u in unmatched]], [])
    numbers = [_pair_numbers(b, t) for b, t in pairs]
    rows, plot_rows = [], []
    for (base, tuned), n in zip(pairs, numbers):
        ks = [k for k in _ks(base) if k in _ks(tuned)]
        label = f"{base.benchmark()} {base.language}"
        d = n["diff"]
        rows.append(f"| {label} | {_where(base)} | "
                    + "; ".join(f"@{k} {_pct(base.results[f'pass@{k}'])}/{_pct(tuned.results[f'pass@{k}'])}" for k in ks)
                    + f" | {_pct(base.results['pass@1'])} {_interval(*n['base_ci'])} | {_pct(tuned.results['pass@1'])} "
                    f"{_interval(*n['tuned_ci'])} | {'+' if d['difference'] >= 0 else ''}{_pct(d['difference'])} "
                    f"{_interval(d['low'], d['high'])} | {len(n['better'])} | {len(n['worse'])} |")
        # a SUBSET bar says so under its label, as its table row does
        plot_rows.append({"label": label.replace(" (", "\n(") + ("\nSUBSET" if base.subset else ""),
                          "base": base.results["pass@1"], "base_ci": n["base_ci"],
                          "tuned": tuned.results["pass@1"], "tuned_ci": n["tuned_ci"]})
    header = ("| benchmark | problems | pass@k base/tuned | base pass@1 [95% CI] | tuned pass@1 [95% CI] | "
              "tuned - base [paired 95% CI] | now solved | now failing |\n|" + "---|" * 8 + "\n")
    parts = ["## Base vs fine-tuned, per benchmark and language (measured in this run; %)\n", header + "\n".join(rows)
             + "\n", "\nIntervals: 10,000 bootstrap draws of the problems (paired for the difference). *now solved*: "
             "problems where some tuned sample passes and no base sample does; *now failing*: the reverse. A SUBSET row"
             " covers only part of its benchmark and is not comparable with published full-benchmark numbers.\n"]
    if plot:
        parts.append(f"\n![pass@1 per benchmark and language, base vs fine-tuned]({plot})\n")
    parts += _published(pairs)
    parts += _flips(pairs, numbers)
    parts += _reasons(pairs)
    if unmatched:
        parts += ["\nNot compared (no counterpart):\n", *[f"- {u}\n" for u in unmatched]]
    return parts, plot_rows


def _published(pairs: Sequence[tuple[Run, Run]]) -> list[str]:
    seen, rows = set(), []
    for base, tuned in pairs:
        for run in (base, tuned):
            for p in published_rows(run.model, run.task, run.language):
                if (p.model, p.task, p.language) not in seen:
                    seen.add((p.model, p.task, p.language))
                    rows.append(f"| {p.model} | {p.task} | {p.language} | {_pct(p.pass_at_1)} | {p.note or '-'} | "
                                f"{p.source} |")
    if not rows:
        return []
    return ["\n### Published numbers (PUBLISHED, not measured here; full benchmark, the source's settings)\n",
            "| model | task | language | pass@1 (%) | note | source |\n|---|---|---|---|---|---|\n"
            + "\n".join(rows) + "\n",
            f"\nHumanEvalFix: {HUMANEVALFIX_SOURCE} has the other models and languages.\n"]


def _flips(pairs: Sequence[tuple[Run, Run]], numbers: Sequence[dict]) -> list[str]:
    parts = ["\n## Problems that flipped, and completions side by side\n"]
    for (base, tuned), n in zip(pairs, numbers):
        label = f"{base.benchmark()} {base.language}"
        parts.append(f"\n**{label}**: now solved {', '.join(n['better']) or 'none'}; "
                     f"now failing {', '.join(n['worse']) or 'none'}.\n")
        shown = ([(t, "now solved") for t in n["better"][:SHOWN_FLIPS]]
                 + [(t, "now failing") for t in n["worse"][:SHOWN_FLIPS]])
        if shown and (base.samples or tuned.samples):
            parts.append("\n| problem | base | fine-tuned |\n|---|---|---|\n" + "\n".join(
                f"| {task} ({why}) | {code_cell(_completion(base, task, why == 'now failing'))} | "
                f"{code_cell(_completion(tuned, task, why == 'now solved'))} |" for task, why in shown) + "\n")
    return parts


def _reasons(pairs: Sequence[tuple[Run, Run]]) -> list[str]:
    rows = []
    for base, tuned in pairs:
        for side, run in (("base", base), ("fine-tuned", tuned)):
            counts = failure_counts(run.results["results"])
            rows.append(f"| {run.benchmark()} {run.language} | {side} | {run.results['samples']} | "
                        + " | ".join(str(counts[r]) for r in REASONS) + " |")
    return ["\n## Why samples fail (counts of samples)\n",
            "| benchmark | model | samples | " + " | ".join(REASONS) + " |\n|" + "---|" * (3 + len(REASONS)) + "\n"
            + "\n".join(rows) + "\n"]
