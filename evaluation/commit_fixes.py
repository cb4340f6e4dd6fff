"""Planted-bug fixes (synthetic; NOT HumanEvalFix): deterministic bugs planted in HumanEval's canonical solutions.

Three mutations, each applied at its first applicable place in the solution (found with ``tokenize``, so
strings and comments are never touched):

- ``flipped_comparison``: the first comparison operator becomes its negation (``<`` -> ``>=``, ``==`` -> ``!=``);
- ``off_by_one``: the first integer literal ``n`` becomes ``n + 1``;
- ``swapped_variable``: the first use of one of the function's parameters (or, with one parameter, of a local
  name) is replaced by another.

A mutant counts only if it differs and fails the problem's tests in the sandbox (``evaluation.task_runs``
checks). The model is prompted as ``<commit_before>BUGGY<commit_msg>Fix bugs in NAME.<commit_after>``
and its code after ``<commit_after>`` is run against the tests. It needs no download, so the offline demo runs it;
HumanEvalFix itself (human-written bugs, OctoPack's prompt with the tests) is ``evaluation.humanevalfix``.
Library module behind ``python -m evaluation mutantfix``.
"""
from __future__ import annotations

import ast
import io
import tokenize
from dataclasses import dataclass

FLIPS = {"<": ">=", ">": "<=", "<=": ">", ">=": "<", "==": "!=", "!=": "=="}
COMMIT_STOPS = ("<commit_before>", "<commit_msg>", "<commit_after>", "<file_sep>", "<|endoftext|>",
                "\nif __name__", "\nprint(", "\nassert ")
MUTATIONS = ("flipped_comparison", "off_by_one", "swapped_variable")


@dataclass(frozen=True)
class BuggyTask:
    task_id: str  # "HumanEval/0/off_by_one"
    problem_id: str
    mutation: str
    buggy_code: str  # prompt + mutated solution: the whole function


def _tokens(code: str) -> list[tokenize.TokenInfo]:
    return list(tokenize.generate_tokens(io.StringIO(code).readline))


def _replace(code: str, token: tokenize.TokenInfo, text: str) -> str:
    lines = code.splitlines(keepends=True)
    row, col = token.start[0] - 1, token.start[1]
    end = token.end[1] if token.end[0] == token.start[0] else len(lines[row])
    lines[row] = lines[row][:col] + text + lines[row][end:]
    return "".join(lines)


def mutate(solution: str, mutation: str, parameters: list[str]) -> str | None:
    """The mutated solution, or None when the mutation has nowhere to apply."""
    try:
        tokens = _tokens(solution)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return None
    if mutation == "flipped_comparison":
        found = next((t for t in tokens if t.type == tokenize.OP and t.string in FLIPS), None)
        return None if found is None else _replace(solution, found, FLIPS[found.string])
    if mutation == "off_by_one":
        found = next((t for t in tokens if t.type == tokenize.NUMBER and t.string.isdigit()), None)
        return None if found is None else _replace(solution, found, str(int(found.string) + 1))
    if mutation == "swapped_variable":
        names = parameters if len(parameters) >= 2 else parameters + _assigned_names(solution)
        names = list(dict.fromkeys(names))
        if len(names) < 2:
            return None
        found = next((t for t in tokens if t.type == tokenize.NAME and t.string in names), None)
        if found is None:
            return None
        other = names[1] if found.string == names[0] else names[0]
        return _replace(solution, found, other)
    raise ValueError(f"unknown mutation {mutation!r}; known: {', '.join(MUTATIONS)}")


def _assigned_names(solution: str) -> list[str]:
    try:
        tree = ast.parse("def _f():\n" + "".join(f"    {line}\n" for line in solution.splitlines()))
    except SyntaxError:
        return []
    return [n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)]


def entry_parameters(problem: dict) -> list[str]:
    try:
        tree = ast.parse(problem["prompt"] + problem["canonical_solution"])
    except SyntaxError:
        return []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == problem["entry_point"]:
            return [a.arg for a in node.args.args]
    return []


def candidate_tasks(problems: dict[str, dict], limit: int | None = None) -> list[BuggyTask]:
    """Every mutation that applies and changes the code (whether it breaks the tests is checked later)."""
    tasks = []
    for problem_id in list(problems)[:limit] if limit else list(problems):
        problem = problems[problem_id]
        for mutation in MUTATIONS:
            mutated = mutate(problem["canonical_solution"], mutation, entry_parameters(problem))
            if mutated is not None and mutated != problem["canonical_solution"]:
                tasks.append(BuggyTask(f"{problem_id}/{mutation}", problem_id, mutation, problem["prompt"] + mutated))
    return tasks


def commit_prompt(task: BuggyTask, entry_point: str) -> str:
    return f"<commit_before>{task.buggy_code}<commit_msg>Fix bugs in {entry_point}.<commit_after>"


def fix_program(code: str, problem: dict) -> str:
    """The whole fixed code (imports and signature included), then the tests."""
    return f"{code}\n{problem['test']}\ncheck({problem['entry_point']})\n"
