"""Benchmark problems in the HumanEval-X / HumanEvalPack format: a JSON lines file (``.gz`` too) or a hub dataset.

    problems = load_problem_set("humaneval_go.jsonl.gz", "go")            # {"Go/0": {...}, ...} in file order
    problems = load_problem_set("bigcode/humanevalpack", "rust", fix=True)  # online only, through ``datasets``

One problem per line: ``task_id`` (``Go/0``, ``Rust/0``; ``Python/0`` or ``HumanEval/0``), ``prompt``,
``declaration``, ``canonical_solution``, ``test``, and for Go ``import`` and ``test_setup``; HumanEvalPack adds
``buggy_solution``, ``entry_point`` (both needed by HumanEvalFix), ``bug_type``, ``example_test``,
``signature``, ``docstring``, ``instruction``. Other fields are kept. A line that lacks a field the language
needs, or whose task id names another language, stops the read with ``FILE:LINE: field ...`` and the fix.
A name that is not a file is loaded from the Hugging Face hub with ``datasets`` (its ``test`` split, the
language as the configuration); offline (``HF_HUB_OFFLINE=1``, this project's default) that is a clear error
saying what to download. Library module; the repository ships no benchmark problems (tests write their own).
"""
from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

LANGUAGES = ("python", "go", "rust")
TASK_PREFIXES = {"python": ("python", "humaneval"), "go": ("go",), "rust": ("rust",)}
NEEDED = {"python": ("prompt", "test"), "go": ("prompt", "import", "test_setup", "test"),
          "rust": ("prompt", "declaration", "test")}
FIX_NEEDED = ("declaration", "buggy_solution", "entry_point", "test")
KNOWN_DATASETS = {"bigcode/humanevalpack": "data/LANGUAGE/data/humanevalpack.jsonl",
                  "THUDM/humaneval-x": "data/LANGUAGE/data/humaneval.jsonl.gz"}


class ProblemFileError(ValueError):
    """Problems that cannot be read; the message names the file, line and field, and the fix."""


def _check(where: str, record: object, language: str, fix: bool) -> dict:
    if not isinstance(record, dict):
        raise ProblemFileError(f"{where}: not a JSON object; write one problem object per line")
    task_id = record.get("task_id")
    if not isinstance(task_id, str) or task_id.split("/")[0].lower() not in TASK_PREFIXES[language]:
        expected = " or ".join(f"{p.capitalize() if p != 'humaneval' else 'HumanEval'}/N" for p in TASK_PREFIXES[language])
        raise ProblemFileError(f"{where}: field \"task_id\" is {task_id!r}, not a {language} task id ({expected}); "
                               f"is this the {language} file? (--language picks the language)")
    for name in NEEDED[language] + (FIX_NEEDED if fix else ()):
        if not isinstance(record.get(name), str):
            raise ProblemFileError(f"{where}: field \"{name}\" is missing or not a string; a {language} "
                                   f"{'HumanEvalPack' if fix else 'HumanEval-X'} problem needs "
                                   f"{', '.join(NEEDED[language] + (FIX_NEEDED if fix else ()))}")
    if language == "python" and "entry_point" not in record and "check(" not in record["test"]:
        raise ProblemFileError(f"{where}: neither an \"entry_point\" field nor a check(...) call in \"test\"")
    return record


def read_problem_file(path: Path, language: str, fix: bool = False) -> dict[str, dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    problems: dict[str, dict] = {}
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                where = f"{path}:{number}"
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ProblemFileError(f"{where}: not valid JSON ({exc.msg}); write one JSON object per line") from exc
                record = _check(where, record, language, fix)
                if record["task_id"] in problems:
                    raise ProblemFileError(f"{where}: task_id {record['task_id']!r} appears twice; keep one")
                problems[record["task_id"]] = record
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise ProblemFileError(f"{path}: cannot read the problems file ({exc})") from exc
    if not problems:
        raise ProblemFileError(f"{path}: no problems in the file")
    return problems


def _offline() -> bool:
    return any(os.environ.get(name, "").lower() in ("1", "true", "yes", "on")
               for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def _download_hint(name: str, language: str) -> str:
    inside = KNOWN_DATASETS.get(name, "the LANGUAGE test split as JSON lines").replace("LANGUAGE", language)
    return (f"download it once where the network is available (e.g. `huggingface-cli download --repo-type dataset "
            f"{name} --local-dir DIR`) and pass --problems DIR/{inside}")


def load_problem_set(spec: str | Path, language: str, fix: bool = False) -> dict[str, dict]:
    """Problems from a file, or from a hub dataset when ``spec`` is no file and the hub is reachable."""
    if language not in LANGUAGES:
        raise ProblemFileError(f"--language {language!r}: choose one of {', '.join(LANGUAGES)}")
    path = Path(spec)
    if path.exists():
        return read_problem_file(path, language, fix)
    name = str(spec)
    if name.count("/") != 1 or name.endswith((".jsonl", ".gz", ".json")):
        raise ProblemFileError(f"--problems {name}: no such file (give a JSON lines file, or a hub dataset name such "
                               "as bigcode/humanevalpack when online)")
    if _offline():
        raise ProblemFileError(f"--problems {name}: not a file, and the Hugging Face hub is offline (HF_HUB_OFFLINE=1);"
                               f" {_download_hint(name, language)}")
    try:
        import datasets
    except ImportError as exc:
        raise ProblemFileError(f"--problems {name}: loading a hub dataset needs `pip install datasets`; or "
                               f"{_download_hint(name, language)}") from exc
    try:
        rows = datasets.load_dataset(name, language, split="test")
    except Exception as exc:  # datasets raises many kinds (connection, missing config): one clear message for all
        raise ProblemFileError(f"--problems {name}: cannot load the {language} test split ({type(exc).__name__}: "
                               f"{str(exc)[:200]}); {_download_hint(name, language)}") from exc
    problems = {}
    for index, row in enumerate(rows):
        record = _check(f"{name}[{index}]", dict(row), language, fix)
        problems[record["task_id"]] = record
    return problems
