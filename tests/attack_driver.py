"""Test helper: run many commands in one fresh interpreter, each as its ``__main__`` does, and report how each ended.

    python -m tests.attack_driver '[["name", "dataset.preprocess", ["--input", ...]], ...]'

Each command runs through ``guardrails.command_errors.run_command`` exactly as ``python -m MODULE`` runs it, with
its stdout and stderr captured; anything that escapes the handler is printed as the traceback a user would see.
Prints one JSON object: name -> {"rc": exit status or "traceback", "stderr": text}. One interpreter for all of
them keeps ``tests/test_attacks.py`` fast: torch and transformers are imported once, not once per command.
"""
from __future__ import annotations

import contextlib
import importlib
import io
import json
import sys
import traceback

from guardrails.command_errors import run_command
from guardrails.output_paths import forget_claims


def run_one(module: str, argv: list[str]) -> dict[str, object]:
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            rc: object = run_command(importlib.import_module(module).main, argv)
        except SystemExit as exc:  # argparse's usage errors
            rc = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # what a user would see as a traceback
            traceback.print_exc()
            rc = "traceback"
    forget_claims()  # each command starts as a fresh process would
    return {"rc": rc, "stderr": err.getvalue()}


def main() -> None:
    results = {name: run_one(module, argv) for name, module, argv in json.loads(sys.argv[1])}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
