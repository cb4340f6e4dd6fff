"""Fixed coding prompts in Python, Go and Rust, completed greedily by two models, shown as a markdown table.

    rows = complete_prompts({"base": (model_a, tok_a), "fine-tuned": (model_b, tok_b)}, SIDE_BY_SIDE_PROMPTS)
    print(markdown_table(rows, ["base", "fine-tuned"]))

The prompts are the classics a reader can judge at a glance (naive and fast Fibonacci, string rotation check,
character frequency, reversing words, primality, binary search). Each completion stops at the language's next
top-level item or after ``max_new_tokens``. Library module behind ``python -m evaluation compare``.
"""
from __future__ import annotations

import html
from typing import Mapping, Sequence

from conversion.code_prompts import CodePrompt
from evaluation.generate import generate_texts
from evaluation.generation_options import GenerationSettings

COMMON_STOPS = ("<|endoftext|>", "<file_sep>", "\n\n\n")
LANGUAGE_STOPS = {"python": ("\ndef ", "\nclass ", "\nif __name__", "\nprint("),
                  "go": ("\nfunc ", "\ntype "), "rust": ("\nfn ", "\nimpl ", "\nstruct ", "\n#[")}


SIDE_BY_SIDE_PROMPTS: tuple[CodePrompt, ...] = (
    CodePrompt("fibonacci (naive)", "python", 'def fib(n: int) -> int:\n    """The n-th Fibonacci number, recursively."""\n'),
    CodePrompt("fibonacci (fast)", "python",
               'def fib_fast(n: int) -> int:\n    """The n-th Fibonacci number in O(n) time and O(1) space."""\n'),
    CodePrompt("string rotation", "python",
               'def is_rotation(a: str, b: str) -> bool:\n    """True if b is a rotation of a, e.g. "waterbottle" and '
               '"erbottlewat"."""\n'),
    CodePrompt("character frequency", "python",
               'def char_frequency(text: str) -> dict[str, int]:\n    """How many times each character occurs in text."""\n'),
    CodePrompt("reverse words", "python", 'def reverse_words(sentence: str) -> str:\n    """The words of sentence in '
               'reverse order."""\n'),
    CodePrompt("is prime", "python", 'def is_prime(n: int) -> bool:\n    """True if n is a prime number."""\n'),
    CodePrompt("binary search", "python", 'def binary_search(items: list[int], target: int) -> int:\n    """Index of '
               'target in the sorted list items, or -1."""\n'),
    CodePrompt("fibonacci (naive)", "go", "// Fib returns the n-th Fibonacci number, recursively.\nfunc Fib(n int) int {\n"),
    CodePrompt("fibonacci (fast)", "go", "// FibFast returns the n-th Fibonacci number in O(n) time.\nfunc FibFast(n int) int {\n"),
    CodePrompt("string rotation", "go", "// IsRotation reports whether b is a rotation of a.\nfunc IsRotation(a, b string) bool {\n"),
    CodePrompt("character frequency", "go",
               "// CharFrequency counts how many times each rune occurs in s.\nfunc CharFrequency(s string) map[rune]int {\n"),
    CodePrompt("fibonacci (naive)", "rust", "/// The n-th Fibonacci number, recursively.\nfn fib(n: u64) -> u64 {\n"),
    CodePrompt("fibonacci (fast)", "rust", "/// The n-th Fibonacci number in O(n) time.\nfn fib_fast(n: u64) -> u64 {\n"),
    CodePrompt("string rotation", "rust", "/// True if b is a rotation of a.\nfn is_rotation(a: &str, b: &str) -> bool {\n"),
    CodePrompt("character frequency", "rust", "use std::collections::HashMap;\n\n/// How many times each character "
               "occurs in text.\nfn char_frequency(text: &str) -> HashMap<char, usize> {\n"),
)


def complete_prompts(models: Mapping[str, tuple[object, object]], prompts: Sequence[CodePrompt] = SIDE_BY_SIDE_PROMPTS,
                     max_new_tokens: int = 64, batch_size: int = 8) -> list[dict]:
    """One row per prompt: name, language, prompt and each model's greedy completion."""
    rows = [{"name": p.name, "language": p.language, "prompt": p.text} for p in prompts]
    for label, (model, tokenizer) in models.items():
        for language in sorted({p.language for p in prompts}):
            chosen = [i for i, p in enumerate(prompts) if p.language == language]
            settings = GenerationSettings(n=1, temperature=0.0, max_new_tokens=max_new_tokens, batch_size=batch_size,
                                          stop_sequences=COMMON_STOPS + LANGUAGE_STOPS.get(language, ()))
            outputs = generate_texts(model, tokenizer, [prompts[i].text for i in chosen], settings, progress=False)
            for i, output in zip(chosen, outputs):
                rows[i][label] = output[0].text
    return rows


def code_cell(code: str) -> str:
    """Code in one table cell: escaped, newlines as <br>, indentation kept."""
    if not code.strip():
        return "<em>(nothing before a stop sequence)</em>"
    lines = html.escape(code).replace("|", "&#124;").split("\n")
    return "<code>" + "<br>".join(line.replace(" ", "&nbsp;") for line in lines) + "</code>"


def markdown_table(rows: Sequence[dict], labels: Sequence[str]) -> str:
    header = "| prompt | language | " + " | ".join(labels) + " |"
    rule = "|---|---|" + "---|" * len(labels)
    body = [f"| {row['name']}<br>{code_cell(row['prompt'].rstrip())} | {row['language']} | "
            + " | ".join(code_cell(row.get(label, "")) for label in labels) + " |" for row in rows]
    return "\n".join([header, rule, *body]) + "\n"
