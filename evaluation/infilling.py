"""Single-line infilling from HumanEval's canonical solutions, in StarCoder's FIM format (PSM order).

As OpenAI's HumanEval-SingleLineInfilling does, every non-blank line of a canonical solution is masked in turn,
in its layout: the middle is the line *with its newline* (prefix = the prompt and the lines above, each with its
newline; suffix = the lines below). The model sees ``<fim_prefix>PREFIX<fim_suffix>SUFFIX<fim_middle>`` and
writes the middle; generation stops at the first newline, which is kept (the middle ends there), and the
program is ``PREFIX + MIDDLE + SUFFIX`` then the tests. A middle without a newline (end of text, length) is
used as it is. The FIM tokens are looked up by name in the tokenizer
(StarCoder's ``<fim_prefix>`` or SantaCoder's ``<fim-prefix>`` spelling); a tokenizer without them is a clear
error. Each task is scored by exact match (the line, trailing whitespace aside) and by running the problem's
tests with the infilled line in the sandbox (pass@1, greedy). Library module behind ``python -m evaluation infill``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from evaluation.generate import cut_at_stop

FIM_SPELLINGS = (("<fim_prefix>", "<fim_suffix>", "<fim_middle>"), ("<fim-prefix>", "<fim-suffix>", "<fim-middle>"))
INFILL_STOPS = ("\n", "<|endoftext|>", "<file_sep>", "<fim_pad>", "<fim-pad>")  # one line, nothing after it
LAYOUT = "HumanEval-SingleLineInfilling: the middle is the masked line and its newline"


class MissingFimTokens(ValueError):
    """The tokenizer has no fill-in-the-middle tokens."""


@dataclass(frozen=True)
class InfillTask:
    task_id: str  # "HumanEval/0/L1": problem, then the masked line's index in the canonical solution
    problem_id: str
    prefix: str
    middle: str  # the masked line and its newline
    suffix: str


def fim_token_ids(tokenizer) -> tuple[int, int, int]:
    """(prefix, suffix, middle) ids, in StarCoder's or SantaCoder's spelling."""
    vocab = tokenizer.get_vocab()
    for names in FIM_SPELLINGS:
        if all(name in vocab for name in names):
            return vocab[names[0]], vocab[names[1]], vocab[names[2]]
    raise MissingFimTokens("the tokenizer has no fill-in-the-middle tokens (<fim_prefix>/<fim_suffix>/<fim_middle> "
                           "or <fim-prefix>/<fim-suffix>/<fim-middle>); infilling needs a FIM-trained model")


def single_line_tasks(problems: dict[str, dict], limit: int | None = None) -> list[InfillTask]:
    tasks = []
    for problem_id in list(problems)[:limit] if limit else list(problems):
        problem = problems[problem_id]
        lines = problem["canonical_solution"].split("\n")
        for index, line in enumerate(lines):
            if not line.strip():
                continue
            prefix = problem["prompt"] + "".join(f"{above}\n" for above in lines[:index])
            suffix = "\n".join(lines[index + 1:])
            tasks.append(InfillTask(f"{problem_id}/L{index}", problem_id, prefix, line + "\n", suffix))
    return tasks


def psm_prompt_ids(tokenizer, task: InfillTask) -> list[int]:
    """``<fim_prefix>PREFIX<fim_suffix>SUFFIX<fim_middle>`` as token ids (the special ids placed, not parsed)."""
    prefix_id, suffix_id, middle_id = fim_token_ids(tokenizer)

    def encode(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    return [prefix_id, *encode(task.prefix), suffix_id, *encode(task.suffix), middle_id]


def middle_from(raw: str) -> str:
    """The generated middle: up to and including the first newline, before any other stop (end of text...)."""
    line, _ = cut_at_stop(raw, INFILL_STOPS[1:])
    return line[:line.index("\n") + 1] if "\n" in line else line


def infilled_program(problem: dict, task: InfillTask, middle: str) -> str:
    return f"{task.prefix}{middle}{task.suffix}\n{problem['test']}\ncheck({problem['entry_point']})\n"


def exact_match(task: InfillTask, line: str) -> bool:
    return line.rstrip() == task.middle.rstrip()


def summarize(tasks: Sequence[InfillTask], lines: Sequence[str], passed: Sequence[bool]) -> dict:
    matches = [exact_match(t, line) for t, line in zip(tasks, lines)]
    return {"tasks": len(tasks), "problems": len({t.problem_id for t in tasks}), "layout": LAYOUT,
            "pass@1": sum(passed) / max(len(tasks), 1), "exact_match": sum(matches) / max(len(tasks), 1),
            "results": [{"task_id": t.task_id, "infilled": line, "expected": t.middle, "exact_match": m, "passed": p}
                        for t, line, m, p in zip(tasks, lines, matches, passed)]}
