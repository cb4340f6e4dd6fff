"""Infilling and planted-bug-fix runs: generate greedily with a model, score in the sandbox, summarize.

    summary = run_infilling(model, tokenizer, problems, sandbox, limit=2, workers=2)
    summary = run_commit_fixes(model, tokenizer, problems, sandbox, limit=2, workers=2)

Both return ``{"tasks", "problems", "problems_total", "subset", "pass@1", ..., "results": [...]}`` (see
``evaluation.infilling`` and ``evaluation.commit_fixes`` for how the tasks are built; ``subset`` is set when
``limit`` left problems out, as for HumanEval runs). Programs run in the BigCode harness's prelude
(``evaluation.python_programs``), as HumanEval's do. Library module behind ``python -m evaluation``.
"""
from __future__ import annotations

from evaluation.commit_fixes import COMMIT_STOPS, candidate_tasks, commit_prompt, fix_program
from evaluation.generate import generate_from_ids, generate_texts
from evaluation.generation_options import GenerationSettings
from evaluation.humaneval_score import run_checks as run_texts, subset_label
from evaluation.infilling import INFILL_STOPS, infilled_program, middle_from, psm_prompt_ids, single_line_tasks, summarize
from evaluation.python_programs import harness_wrapped
from evaluation.sandbox import Sandbox


def run_checks(programs, sandbox: Sandbox, workers: int, progress: bool, label: str):
    """The programs in the harness's prelude, in parallel in the sandbox, results in input order."""
    return run_texts([harness_wrapped(text) for text in programs], sandbox, workers, progress, label)


def with_subset(summary: dict, problems: dict[str, dict], limit: int | None) -> dict:
    """``summary`` with the benchmark's size and the subset label of a ``limit`` run (None: every problem)."""
    total = len(problems)
    return {**summary, "problems_total": total, "subset": subset_label(min(limit or total, total), total)}


def summary_line(summary: dict) -> str:
    """The printed result: pass@1 (and exact match) over the tasks, SUBSET when part of the benchmark ran."""
    exact = f" exact_match={summary['exact_match']:.4f}" if "exact_match" in summary else ""
    subset = (f" - a SUBSET ({summary['subset']}), not comparable with full-benchmark numbers"
              if summary.get("subset") else "")
    return f"pass@1={summary['pass@1']:.4f}{exact} over {summary['tasks']} tasks ({summary['problems']} problems){subset}"


def greedy(max_new_tokens: int, stops: tuple[str, ...], batch_size: int) -> GenerationSettings:
    """The model is already placed on its device: the settings' ``device`` plays no part here."""
    return GenerationSettings(n=1, temperature=0.0, max_new_tokens=max_new_tokens, batch_size=batch_size,
                              stop_sequences=stops)


def run_infilling(model, tokenizer, problems: dict[str, dict], sandbox: Sandbox, limit: int | None, workers: int,
                  max_new_tokens: int = 64, batch_size: int = 8, progress: bool = False) -> dict:
    tasks = single_line_tasks(problems, limit)
    prompts = [psm_prompt_ids(tokenizer, task) for task in tasks]  # raises MissingFimTokens first
    outputs = generate_from_ids(model, tokenizer, prompts, greedy(max_new_tokens, INFILL_STOPS, batch_size), progress)
    raw = [tokenizer.decode(list(o[0].token_ids), skip_special_tokens=False, clean_up_tokenization_spaces=False)
           for o in outputs]
    lines = [middle_from(text) for text in raw]
    programs = [infilled_program(problems[t.problem_id], t, line) for t, line in zip(tasks, lines)]
    passed = [r.status == "passed" for r in run_checks(programs, sandbox, workers, progress, "infilling tests")]
    return with_subset(summarize(tasks, lines, passed), problems, limit)


def run_commit_fixes(model, tokenizer, problems: dict[str, dict], sandbox: Sandbox, limit: int | None,
                     workers: int, max_new_tokens: int = 512, batch_size: int = 8, progress: bool = False) -> dict:
    candidates = candidate_tasks(problems, limit)
    # a mutant that still passes the tests is no bug: keep only those that fail
    checks = run_checks([fix_program(t.buggy_code, problems[t.problem_id]) for t in candidates], sandbox, workers,
                        progress, "checking mutants")
    tasks = [t for t, check in zip(candidates, checks) if check.status != "passed"]
    prompts = [commit_prompt(t, problems[t.problem_id]["entry_point"]) for t in tasks]
    outputs = generate_texts(model, tokenizer, prompts, greedy(max_new_tokens, COMMIT_STOPS, batch_size), progress)
    fixes = [output[0].text for output in outputs]
    results = run_checks([fix_program(code, problems[t.problem_id]) for t, code in zip(tasks, fixes)], sandbox,
                         workers, progress, "commit-fix tests")
    by_mutation: dict[str, list[bool]] = {}
    for task, result in zip(tasks, results):
        by_mutation.setdefault(task.mutation, []).append(result.status == "passed")
    summary = {"tasks": len(tasks), "problems": len({t.problem_id for t in tasks}),
               "mutants_still_passing": len(candidates) - len(tasks),
               "pass@1": sum(r.status == "passed" for r in results) / max(len(tasks), 1),
               "pass@1_by_mutation": {m: sum(v) / len(v) for m, v in by_mutation.items()},
               "results": [{"task_id": t.task_id, "mutation": t.mutation, "passed": r.status == "passed",
                            "result": r.result, "fix": code} for t, r, code in zip(tasks, results, fixes)]}
    return with_subset(summary, problems, limit)
