"""Docstring -> body pairs mined with ``ast`` from real Python source (by default the installed stdlib).

    python -m dataset.docstring_pairs --output out/pairs.jsonl [--roots DIR ...] [--seed 1234] \\
        [--max-records 3000] [--max-record-chars 2000] [--filename-probability 0.5] [--exclude-dir NAME ...]

This is the toolkit's embedded default data (``make demo``): every machine that runs Python has the
standard library's source (``sysconfig.get_paths()["stdlib"]``), so the demo needs no download.

For each function or method whose first statement is a docstring:

- prompt = the source lines from the ``def`` line (indentation included, decorators not) through the
  line where the docstring ends; body = the following lines through the function's last line;
- record (``dataset.builders.octopack_format``, as the fork fixtures ``sample.jsonl``):
  ``inputs = ["<filename>" NAME ".py"] "<commit_before>" PROMPT``, ``targets = BODY "<|endoftext|>"``,
  NAME the function's name, present with a seeded coin.

Skipped and counted: files that cannot be read, decoded (PEP 263 coding cookie honoured) or parsed, files
over ``--max-file-bytes``; functions without a docstring, with only a docstring, with code on the
docstring's last line, whose prompt or body is whitespace only, whose prompt + body exceed
``--max-record-chars``, that contain a special token literally, or that repeat an earlier pair exactly.
Directories named in ``--exclude-dir`` are not walked (default: site-packages, __pycache__ and the test
suites, whose files include deliberately broken code).

Order is deterministic: files sorted by path, functions by position, duplicates dropped keeping the
first; the pairs are then shuffled with ``random.Random(seed)``, the first ``--max-records`` kept (0 =
all), and the same RNG draws the filename coin. Output is written atomically with a manifest beside it.

The code: ``dataset.builders.docstring_pairs`` (``dataset/builders/docstring_pairs.py``); this module is the command's entry point only.
"""
from guardrails.command_errors import run_command
from dataset.builders.docstring_pairs import main

if __name__ == "__main__":
    raise SystemExit(run_command(main))
