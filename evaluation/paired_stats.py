"""Base vs tuned on the same problems: per-problem pass rates, a paired bootstrap interval, flipped problems, reasons.

    rates = problem_rates(results["results"])                # {"HumanEval/0": 0.4, ...}: passing samples / samples
    diff = paired_difference(base_rates, tuned_rates)        # mean tuned - base over shared problems, 95% interval
    low, high = bootstrap_interval(list(rates.values()))     # one model's pass@1 interval
    better, worse = flipped(base_rates, tuned_rates)         # solved by one model only (any sample passing)
    counts = failure_counts(results["results"])              # why samples failed

The interval resamples *problems* with replacement (the samples of a problem stay together, and a paired draw
takes the same problems for both models), 10,000 rounds with a fixed seed, and reports the 2.5 and 97.5
percentiles: the spread a different draw of problems of the same kind would give. Pass@1 per problem is the
fraction of its samples that passed (the unbiased pass@1). Library module.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from typing import Mapping, Sequence

import numpy as np

ROUNDS = 10_000
REASONS = ("syntax or compile error", "wrong answer", "runtime error", "timeout", "stopped by the length budget")
_SYNTAX = ("SyntaxError", "IndentationError", "TabError", "compile error")
_WRONG = ("AssertionError", "test failed")


def problem_rates(entries: Sequence[Mapping]) -> dict[str, float]:
    passed: dict[str, list[bool]] = defaultdict(list)
    for entry in entries:
        passed[entry["task_id"]].append(bool(entry["passed"]))
    return {task: sum(v) / len(v) for task, v in passed.items()}


def _percentiles(means: np.ndarray) -> tuple[float, float]:
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def bootstrap_interval(rates: Sequence[float], rounds: int = ROUNDS, seed: int = 0) -> tuple[float, float]:
    values = np.asarray(rates, dtype=float)
    if values.size == 0:
        return 0.0, 0.0
    draws = np.random.default_rng(seed).integers(0, values.size, size=(rounds, values.size))
    return _percentiles(values[draws].mean(axis=1))


def paired_difference(base: Mapping[str, float], tuned: Mapping[str, float], rounds: int = ROUNDS,
                      seed: int = 0) -> dict:
    """Mean of tuned - base over the problems both ran, with its paired bootstrap 95% interval."""
    shared = sorted(set(base) & set(tuned))
    diffs = np.asarray([tuned[t] - base[t] for t in shared], dtype=float)
    if diffs.size == 0:
        return {"problems": 0, "difference": 0.0, "low": 0.0, "high": 0.0}
    draws = np.random.default_rng(seed).integers(0, diffs.size, size=(rounds, diffs.size))
    low, high = _percentiles(diffs[draws].mean(axis=1))
    return {"problems": int(diffs.size), "difference": float(diffs.mean()), "low": low, "high": high}


def flipped(base: Mapping[str, float], tuned: Mapping[str, float]) -> tuple[list[str], list[str]]:
    """Problems that only the tuned model solves (some sample passed), and those only the base model solves."""
    shared = [t for t in base if t in tuned]
    return ([t for t in shared if tuned[t] > 0 and base[t] == 0], [t for t in shared if base[t] > 0 and tuned[t] == 0])


def failure_reason(entry: Mapping) -> str | None:
    """Why a sample failed, in one of :data:`REASONS` (None when it passed)."""
    if entry["passed"]:
        return None
    result = str(entry.get("result", ""))
    if entry.get("stopped") == "length":
        return "stopped by the length budget"
    if result == "timed out":
        return "timeout"
    if any(word in result for word in _SYNTAX):
        return "syntax or compile error"
    if any(word in result for word in _WRONG):
        return "wrong answer"
    return "runtime error"


def failure_counts(entries: Sequence[Mapping]) -> dict[str, int]:
    counts = Counter(r for r in map(failure_reason, entries) if r is not None)
    return {reason: counts.get(reason, 0) for reason in REASONS}
