"""``python -m evaluation report --base RUN... --tuned RUN... --out REPORT.md``: compare any two evaluated models.

Each RUN is the output of ``humaneval``/``humanevalfix`` (a ``--model`` folder or a RESULTS.json) or a folder of
such folders; runs pair by task, language, problems and subset (``evaluation.evaluated_runs``). Writes the
markdown (``evaluation.comparison_report``), beside it ``REPORT_pass_at_1.png`` and their record
``REPORT.md.manifest.json``, all three appearing together (``guardrails.file_set``: an interrupted run leaves the
earlier report whole); both are replaced only when that record proves them an earlier report's. Library module
behind ``evaluation.commands``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from guardrails.file_set import FileSet, atomic_file_set
from guardrails.output_paths import claim_file
from guardrails.output_records import sidecar_record
from evaluation.comparison_report import comparison_sections
from evaluation.evaluated_runs import find_runs, pair_runs
from evaluation.report_plot import write_pass_at_1_plot

REPORT_MARKER = "<!-- written by python -m evaluation report -->"


def plot_path(report: Path) -> Path:
    return report.with_name(f"{report.stem}_pass_at_1.png")


def render_comparison(base: list[Path], tuned: list[Path], out: Path, title: str,
                      files: FileSet) -> tuple[str, bool]:
    """The report's text, and whether it wrote the plot (into ``files``, for beside ``out``; when there is
    something to plot)."""
    pairs, unmatched = pair_runs(find_runs(base), find_runs(tuned))
    plot = plot_path(out)
    sections, plot_rows = comparison_sections(pairs, unmatched, plot.name if pairs else None)
    if plot_rows:
        write_pass_at_1_plot(plot_rows, files.temporary(plot), atomic=False)
    models = {run.model for pair in pairs for run in pair}
    head = [f"{REPORT_MARKER}\n# {title}\n", f"Base: {', '.join(map(str, base))}; fine-tuned: {', '.join(map(str, tuned))}"
            f" ({', '.join(sorted(m for m in models if m)) or 'models not recorded'}). Every number was measured "
            "by python -m evaluation and read from these runs, except the rows marked PUBLISHED.\n"]
    return "\n".join(head + sections), bool(plot_rows)


def report(args: argparse.Namespace) -> int:
    from evaluation.commands import check_replaceable, output_kind

    inputs = tuple(args.base) + tuple(args.tuned)
    check_replaceable(args.out, "report", inputs)
    plot = claim_file(plot_path(args.out), output_kind("report"), "--out", inputs=inputs,
                      record=sidecar_record(args.out))  # one record proves the report and its plot
    with atomic_file_set(args.out, output_kind("report")) as files:
        text, plotted = render_comparison(args.base, args.tuned, args.out, args.title, files)
        if not plotted:
            files.remove(plot)  # an earlier report's plot (proven above) must not sit beside this one
        files.temporary(args.out).write_bytes(text.encode("utf-8"))
    print(f"report -> {args.out}")
    return 0


def add_report_parser(commands) -> None:
    parser = commands.add_parser("report", help="base vs fine-tuned: pass@k with intervals, flips, failure reasons")
    parser.add_argument("--base", type=Path, nargs="+", required=True, help="the base model's evaluated runs")
    parser.add_argument("--tuned", type=Path, nargs="+", required=True, help="the fine-tuned model's evaluated runs")
    parser.add_argument("--out", type=Path, required=True, help="REPORT.md (the plot goes beside it)")
    parser.add_argument("--title", default="Evaluation report: base vs fine-tuned")
    parser.set_defaults(func=report)
