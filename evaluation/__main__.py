"""Command line of the evaluation package.

    python -m evaluation humaneval [--language python|go|rust] [--problems FILE] (--samples S | --canonical |
        --model HF_DIR) --out OUT [--k 1,10,100] [--timeout S] [--workers N] [generation options]
    python -m evaluation humanevalfix --language L --problems HUMANEVALPACK (--samples S | --canonical | --buggy |
        --model HF_DIR) --out OUT
    python -m evaluation report --base RUN... --tuned RUN... --out REPORT.md
    python -m evaluation sweep --run SAVE --every K --out DIR [--problems FILE] [--valid-prefix PREFIX]

``humaneval`` scores completions (or the reference solutions, or a model's generations made with the BigCode
evaluation harness's settings) in the sandbox, Python as the harness runs it, Go and Rust as HumanEval-X builds
them; ``humanevalfix`` is HumanEvalPack's HumanEvalFix with OctoPack's commit prompt; ``report`` compares two
models' runs; ``sweep`` evaluates a run's checkpoints. Other commands: ``infill``, ``mutantfix``, ``compare``,
``loss`` and ``toy`` (see ``--help`` of each). Exit status: 0 done, 2 bad input, no sandbox or no toolchain.
"""
from __future__ import annotations

from guardrails.command_errors import run_command

from evaluation.commands import main

if __name__ == "__main__":
    raise SystemExit(run_command(main))
