"""The report's picture: pass@1 per benchmark and language, base vs fine-tuned, with 95% bootstrap intervals (PNG).

    write_pass_at_1_plot(rows, Path("out/demo/report_pass_at_1.png"))   # rows: label, base, tuned and intervals
    write_pass_at_1_plot(rows, files.temporary(plot), atomic=False)     # into a set that appears together

Library module; matplotlib's Agg backend, written atomically (or into a temporary the caller puts in place).
"""
from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Sequence

from guardrails.atomic_files import atomic_path

PLOT_SIGNATURE = "python -m evaluation report"  # in the PNG's text chunk: proves a later run may replace it


def write_pass_at_1_plot(rows: Sequence[dict], path: Path, atomic: bool = True) -> Path:
    """``rows``: ``{"label", "base", "base_ci", "tuned", "tuned_ci"}`` (pass@1 as fractions, intervals as pairs).
    ``atomic=False``: ``path`` is a temporary of ``guardrails.file_set``, written directly."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(max(4.0, 1.6 * len(rows) + 1.5), 3.6))
    width = 0.38
    for offset, side, colour in ((-width / 2, "base", "#8c8c8c"), (width / 2, "tuned", "#1f77b4")):
        xs = [i + offset for i in range(len(rows))]
        values = [r[side] for r in rows]
        errors = [[v - r[f"{side}_ci"][0] for v, r in zip(values, rows)],
                  [r[f"{side}_ci"][1] - v for v, r in zip(values, rows)]]
        axes.bar(xs, values, width, yerr=errors, capsize=4, color=colour,
                 label="base" if side == "base" else "fine-tuned")
    axes.set_xticks(range(len(rows)), [r["label"] for r in rows], fontsize=8)
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("pass@1 (95% bootstrap interval)")
    axes.legend(fontsize=8)
    figure.tight_layout()
    with atomic_path(path) if atomic else nullcontext(path) as tmp:
        # the bars' labels in the PNG's text too (what it shows, SUBSET marks included), readable without the image
        figure.savefig(tmp, format="png", dpi=110, metadata={"Software": PLOT_SIGNATURE, "Description": " | ".join(
            r["label"].replace("\n", " ") for r in rows)})
    plt.close(figure)
    return path


def write_sweep_plot(rows: Sequence[dict], path: Path, title: str) -> Path:
    """pass@1 (left, with intervals) and held-out loss (right, when measured) against the iteration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.0, 3.6))
    its = [r["iteration"] for r in rows]
    values = [r["pass@1"] for r in rows]
    errors = [[v - r["pass@1_interval"][0] for v, r in zip(values, rows)],
              [r["pass@1_interval"][1] - v for v, r in zip(values, rows)]]
    axes.errorbar(its, values, yerr=errors, marker="o", capsize=3, color="#1f77b4", label="pass@1")
    axes.set_xlabel("iteration")
    axes.set_ylabel("pass@1 (95% bootstrap interval)", color="#1f77b4")
    axes.set_ylim(0, 1.05)
    if all("heldout_loss" in r for r in rows):
        loss_axes = axes.twinx()
        loss_axes.plot(its, [r["heldout_loss"] for r in rows], marker="s", color="#d62728", label="held-out loss")
        loss_axes.set_ylabel("held-out loss", color="#d62728")
    axes.set_title(title, fontsize=9)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110, metadata={"Software": PLOT_SIGNATURE, "Title": title})
    plt.close(figure)
    return path
