"""What a benchmark asks of generation: its prompt, stop words, stop rule, cut and how a sample is stored.

    task = humaneval_task("go")          # HumanEval / HumanEval-X synthesis (the harness's humaneval, humanevalsynthesize)
    task = humanevalfix_task("rust")     # HumanEvalFix with OctoPack's commit prompt (evaluation.humanevalfix)
    sample = task.sample(task_id, problem, text)   # text: the generation after the stripped prompt, cut

``evaluation.humaneval_generate`` runs any task; the checker of ``evaluation.checkers`` runs the program the
task's ``program`` builds from a sample. Library module.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from evaluation.compiled_programs import STOP_WORDS, close_function, generation_prompt
from evaluation.generation_options import HARNESS_MAX_LENGTH, HUMANEVAL_STOP_SEQUENCES
from evaluation.humaneval_tasks import Sample
from evaluation.humanevalfix import (FIX_MAX_LENGTH, FIX_STOP_WORDS, FIX_TIMEOUT_S, cut_generation, fix_prompt,
                                     fix_program, fixed_code)


# HumanEvalPack's tasks (humanevalpack.py: synthesis and fix) append this literal to every language's stop words, and
# the harness then appends the tokenizer's own end-of-text token too: a model whose EOS is another token (Llama's
# </s>) still has its generation cut at the text "<|endoftext|>", as there
PACK_END_OF_TEXT = "<|endoftext|>"


def completion_for(prompt: str, generated: str) -> str:
    """The completion of the full ``prompt`` equivalent to ``prompt.strip() + generated``."""
    trailing = prompt[len(prompt.rstrip()):]
    return generated[len(trailing):] if generated.startswith(trailing) else generated


@dataclass(frozen=True)
class GenerationTask:
    name: str  # "humaneval" or "humanevalfix"
    language: str
    prompt: Callable[[dict], str]  # the problem's prompt before stripping
    stops: tuple[str, ...]  # the tokenizer's end-of-text token is added to these (humaneval_generate.stop_words)
    stop_rule: str
    cut: Callable[[str, tuple[str, ...]], str]  # the generation after the stripped prompt -> the text scored
    sample: Callable[[str, dict, str], Sample]
    program: Callable[[dict, Sample], str] | None  # None: the checker's HumanEval program
    max_length: int = HARNESS_MAX_LENGTH
    timeout_s: float | None = None  # None: the checker's default


def humaneval_task(language: str) -> GenerationTask:
    def sample(task_id: str, problem: dict, text: str) -> Sample:
        prompt = generation_prompt(language, problem)
        if language == "python":  # scored after the stripped prompt, exactly as the harness does
            return Sample(task_id, text, 0, prompt.strip())
        return Sample(task_id, completion_for(prompt, text), 0)

    if language == "python":
        return GenerationTask("humaneval", language, lambda p: generation_prompt(language, p), HUMANEVAL_STOP_SEQUENCES,
                              "", lambda text, stops: text, sample, None)
    return GenerationTask("humaneval", language, lambda p: generation_prompt(language, p),
                          (*STOP_WORDS[language], PACK_END_OF_TEXT),
                          "braces", lambda text, stops: close_function(text.rstrip(), stops), sample, None)


def humanevalfix_task(language: str) -> GenerationTask:
    return GenerationTask("humanevalfix", language, lambda p: fix_prompt(language, p),
                          (*FIX_STOP_WORDS[language], PACK_END_OF_TEXT),
                          "unindented" if language == "python" else "braces",
                          lambda text, stops: cut_generation(language, text, stops),
                          lambda task_id, problem, text: Sample(task_id, text, 0),
                          lambda problem, s: fix_program(language, problem, fixed_code(language, problem, s.completion)),
                          FIX_MAX_LENGTH, FIX_TIMEOUT_S[language])
