"""The flags the fork's ``megatron/arguments.py`` defines, read from its syntax tree (the file is never run).

The code of ``python -m training.fork_flags``; how to run it and what it does: the docstring of its entry point
``training/fork_flags.py``.
"""
from __future__ import annotations

import ast
import json
import sys
from typing import Any



def extract_flags(source: str) -> dict[str, dict[str, Any]]:
    """Every ``add_argument`` flag of ``source`` (the text of an ``arguments.py``)."""
    flags: dict[str, dict[str, Any]] = {}
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument"):
            continue
        names = [a.value for a in node.args if isinstance(a, ast.Constant) and str(a.value).startswith("-")]
        keywords = {k.arg: k.value for k in node.keywords}
        action = keywords.get("action")
        entry: dict[str, Any] = {
            "takes_value": not (isinstance(action, ast.Constant) and action.value in ("store_true", "store_false"))}
        choices = keywords.get("choices")
        if isinstance(choices, (ast.List, ast.Tuple)) and all(isinstance(e, ast.Constant) for e in choices.elts):
            entry["choices"] = [e.value for e in choices.elts]
        if isinstance(keywords.get("nargs"), ast.Constant):
            entry["nargs"] = keywords["nargs"].value
        for name in names:
            flags[name] = entry
    return dict(sorted(flags.items()))


def argv_problems(argv: list[str], flags: dict[str, dict[str, Any]]) -> list[str]:
    """Why the fork's parser would reject ``argv`` (unknown flag, missing value, value not a choice); [] if none."""
    problems = []
    i = 0
    while i < len(argv):
        flag = argv[i]
        spec = flags.get(flag)
        if spec is None:
            problems.append(f"{flag}: not a flag of the fork's megatron/arguments.py" + (
                f" (it spells it {flag.replace('_', '-')})" if flag.replace("_", "-") in flags else ""))
            i += 1
            continue
        if not spec["takes_value"]:
            i += 1
            continue
        if spec.get("nargs") in ("*", "+"):
            j = i + 1
            while j < len(argv) and not argv[j].startswith("--"):
                j += 1
            i = j
            continue
        if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
            problems.append(f"{flag}: needs a value")
            i += 1
            continue
        value = argv[i + 1]
        if "choices" in spec and value not in [str(c) for c in spec["choices"]]:
            problems.append(f"{flag} {value}: not one of {', '.join(map(str, spec['choices']))}")
        i += 2
    return problems


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m training.fork_flags PATH/TO/megatron/arguments.py", file=sys.stderr)
        return 2
    try:
        with open(args[0], encoding="utf-8") as f:
            print(json.dumps(extract_flags(f.read()), indent=1))
    except (OSError, SyntaxError) as exc:
        print(f"error: {args[0]}: {exc}", file=sys.stderr)
        return 2
    return 0
