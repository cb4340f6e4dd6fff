"""Fixed code prompts (Python, Go, Rust) for logit comparisons, plus the ``--prompts FILE`` JSONL reader.

Used by ``python -m conversion.verify logits``. The built-in prompts are short, deterministic snippets in the
three languages the toolkit evaluates, so that two runs of the check always see the same tokens. A prompts
file is JSONL, one object per line: ``{"prompt": "def f(x):", "name": "optional", "language": "optional"}``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from runconfig.strict_json import StrictJSONError, loads_strict


@dataclass(frozen=True)
class CodePrompt:
    name: str
    language: str
    text: str


BUILTIN_PROMPTS: tuple[CodePrompt, ...] = (
    CodePrompt("python_fib", "python", 'def fibonacci(n: int) -> int:\n    """Return the n-th Fibonacci number."""\n'
               "    if n < 2:\n        return n\n"),
    CodePrompt("python_read_json", "python", "import json\nfrom pathlib import Path\n\n\n"
               "def load_records(path: Path) -> list[dict]:\n    records = []\n    with open(path) as handle:\n"),
    CodePrompt("go_reverse", "go", "package main\n\nimport \"fmt\"\n\n// Reverse returns s with its runes in reverse "
               "order.\nfunc Reverse(s string) string {\n\tr := []rune(s)\n\tfor i, j := 0, len(r)-1; i < j; "),
    CodePrompt("go_http", "go", "func handler(w http.ResponseWriter, r *http.Request) {\n\tif r.Method != "
               "http.MethodGet {\n\t\thttp.Error(w, \"method not allowed\", http.StatusMethodNotAllowed)\n"),
    CodePrompt("rust_sum", "rust", "/// Sum of the even numbers in `values`.\nfn sum_even(values: &[i64]) -> i64 {\n"
               "    values.iter().filter(|v| *v % 2 == 0)"),
    CodePrompt("rust_struct", "rust", "#[derive(Debug, Clone, PartialEq)]\npub struct Point {\n    pub x: f64,\n"
               "    pub y: f64,\n}\n\nimpl Point {\n    pub fn distance(&self, other: &Point) -> f64 {\n"),
)


class PromptFileError(ValueError):
    """A prompts file line that is not usable; the message names file, line and field."""


def load_prompts_file(path: str | Path) -> list[CodePrompt]:
    """Read a JSONL prompts file (see the module docstring); blank lines are skipped."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise PromptFileError(f"{path}: cannot read prompts file ({exc})") from exc
    prompts = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = loads_strict(line, str(path), first_line=number)
        except StrictJSONError as exc:  # malformed, or a key given twice
            raise PromptFileError(f"{exc}; write one JSON object per line") from exc
        if not isinstance(record, dict) or not isinstance(record.get("prompt"), str) or not record["prompt"]:
            raise PromptFileError(f"{path}:{number}: field \"prompt\" must be a non-empty string, "
                                  'e.g. {"prompt": "def add(a, b):"}')
        for optional in ("name", "language"):
            if optional in record and not isinstance(record[optional], str):
                raise PromptFileError(f"{path}:{number}: field \"{optional}\" must be a string")
        prompts.append(CodePrompt(record.get("name", f"{path.stem}_{number}"), record.get("language", ""),
                                  record["prompt"]))
    if not prompts:
        raise PromptFileError(f"{path}: no prompts; add lines like {{\"prompt\": \"def add(a, b):\"}}")
    return prompts
