"""Score HumanEval completions in the sandbox: one result per sample and the unbiased pass@k per problem, averaged.

    results = score_samples(samples, problems, Sandbox(SandboxLimits(timeout_s=3.0)), ks=(1, 10, 100), workers=4)
    results = score_samples(samples, problems, make_checker("go"), ks=(1,), workers=2)   # any language's checker

A Python ``Sandbox`` is wrapped in the harness's prelude (``evaluation.checkers.PythonChecker``); a checker
from ``evaluation.checkers`` is used as it is.

``results`` is what ``python -m evaluation humaneval`` writes to ``RESULTS.json``: ``pass@K`` for each K the
sample count allows, ``problems`` (how many the samples cover), ``samples``, and ``results``, one entry per
sample in input order with ``task_id``, ``completion_id`` (its rank among its task's samples), ``passed`` and
``result`` (``passed``, ``failed: REASON`` or ``timed out``; REASON is the sandbox's bounded, sanitised reason,
never the program's output), and ``settings.sandbox``: the limits and which of them held (``in_force``).
Library module.
"""
from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence

from tqdm import tqdm

from evaluation.checkers import PythonChecker
from evaluation.humaneval_tasks import Sample
from evaluation.pass_at_k import mean_pass_at_k
from evaluation.sandbox import ProgramResult, Sandbox


def run_all(items: Sequence, run: Callable, workers: int, progress: bool = True,
            label: str = "tests") -> list[ProgramResult]:
    """``run(item)`` for every item in parallel, results in input order, with a progress bar (samples/s)."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(tqdm(pool.map(run, items), total=len(items), desc=label, unit="sample",
                         disable=not progress, mininterval=1.0))


def run_checks(programs: Sequence[str], sandbox: Sandbox, workers: int, progress: bool = True,
               label: str = "tests") -> list[ProgramResult]:
    """Run ``programs`` (complete texts) in parallel in the sandbox (started ahead), results in input order."""
    with sandbox.warm(2 * max(1, workers)):
        return run_all(programs, sandbox.run, workers, progress, label)


def subset_label(problems: int, total: int) -> str | None:
    """How a run over part of a benchmark is labelled everywhere (None for the whole benchmark)."""
    return None if problems >= total else f"subset: {problems} of {total} problems (--limit or a partial samples file)"


def problems_cell(results: dict) -> str:
    """The problems a run covered, as every table shows them: ``N``, or ``N of TOTAL (SUBSET)`` for part of one."""
    problems = results.get("problems")
    return f"{problems} of {results.get('problems_total')} (SUBSET)" if results.get("subset") else str(problems)


def score_samples(samples: Sequence[Sample], problems: dict[str, dict], sandbox, ks: Sequence[int],
                  workers: int, progress: bool = True) -> dict:
    checker = PythonChecker(sandbox) if isinstance(sandbox, Sandbox) else sandbox
    with checker.warm(workers):
        outcomes = run_all(samples, lambda s: checker.check(problems[s.task_id], s), workers, progress)
    seen: Counter[str] = Counter()
    entries = []
    for sample, outcome in zip(samples, outcomes):
        entries.append({"task_id": sample.task_id, "completion_id": seen[sample.task_id],
                        "passed": outcome.status == "passed", "result": outcome.result})
        seen[sample.task_id] += 1
    counts = {task: (n, sum(e["passed"] for e in entries if e["task_id"] == task)) for task, n in seen.items()}
    scores, skipped = mean_pass_at_k(counts, ks)
    return {**scores, "problems": len(counts), "problems_total": len(problems),
            "subset": subset_label(len(counts), len(problems)), "samples": len(samples),
            "samples_per_problem": {"min": min(seen.values()), "max": max(seen.values())},
            "k_not_reported": skipped, "language": checker.language,
            "settings": {"ks": sorted(set(ks)), "workers": workers, **checker.settings()},
            "results": entries}


def format_scores(results: dict) -> str:
    """One line: ``pass@1=0.1234 pass@10=... over N problems (M samples)``."""
    scores = " ".join(f"{key}={value:.4f}" for key, value in results.items() if key.startswith("pass@"))
    left_out = f"; not enough samples for pass@{results['k_not_reported']}" if results["k_not_reported"] else ""
    subset = " - a SUBSET, not comparable with full-benchmark numbers" if results.get("subset") else ""
    return (f"{scores or 'no pass@k'} over {results['problems']} of {results['problems_total']} problems "
            f"({results['samples']} samples){subset}{left_out}")
