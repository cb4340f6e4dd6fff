"""Test helper: run many commands in one fresh interpreter, each as its ``__main__`` does, and report how each ended.

    python -m tests.attack_driver '[["name", "dataset.preprocess", ["--input", ...]], ...]' [--markers]

Each command runs through ``guardrails.command_errors.run_command`` exactly as ``python -m MODULE`` runs it, with
its stdout and stderr captured; anything that escapes the handler is printed as the traceback a user would see.
Prints one JSON object: name -> {"rc": exit status or "traceback", "stderr": text}. One interpreter for all of
them keeps the attack tests fast: torch and transformers are imported once, not once per command.

``--markers``: for a test that signals the commands (``tests/test_attacks_signals.py``): each command's module is
imported; once ``run_command`` has started it (its handlers in place), ``START name`` is printed and the driver
waits for a line on stdin; then the command's ``main`` runs, ``END name`` is printed and the driver waits for
another line. A SIGTERM that arrives after the command ended is counted
(``"late": true``) instead of ending the driver; after the results it waits for a last line before it exits (a
signal during the interpreter's shutdown would meet the default handler).
"""
from __future__ import annotations

import contextlib
import importlib
import io
import json
import signal
import sys
import traceback

from guardrails.command_errors import run_command, signals_deferred
from guardrails.output_paths import forget_claims

_LATE: list[int] = []


def _handshake(line: str) -> None:
    print(line, file=sys.__stdout__, flush=True)
    sys.stdin.readline()


def run_one(module: str, argv: list[str], name: str | None = None) -> dict[str, object]:
    main = importlib.import_module(module).main
    if name is not None:
        command = main

        def main(argv: list[str] | None = None) -> int:
            # the line that lets the command go is read whole even when the signal comes first (it then acts as
            # the command begins): an interrupted read would leave it in the pipe, every later handshake would
            # read the line meant for the one before, and a command could start before the test saw START
            with signals_deferred():
                _handshake(f"START {name}")
            return command(argv)

        main.__module__ = command.__module__  # the command's name in its messages
    err, out = io.StringIO(), io.StringIO()
    # counted from before the command: a SIGTERM that arrives as run_command puts the driver's handler back (the
    # command had ended) is late, whenever Python gets round to running the handler
    late = len(_LATE)
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            rc: object = run_command(main, argv)
        except SystemExit as exc:  # argparse's usage errors
            rc = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # what a user would see as a traceback
            traceback.print_exc()
            rc = "traceback"
    forget_claims()  # each command starts as a fresh process would
    if name is not None:
        _handshake(f"END {name}")
    return {"rc": rc, "stderr": err.getvalue(), "late": len(_LATE) > late}


def main() -> None:
    markers = "--markers" in sys.argv[2:]
    if markers:
        signal.signal(signal.SIGTERM, lambda signum, frame: _LATE.append(signum))
    batch = json.loads(sys.argv[1])
    results = {name: run_one(module, argv, name if markers else None) for name, module, argv in batch}
    print(json.dumps(results), flush=True)
    if markers:
        sys.stdin.readline()


if __name__ == "__main__":
    main()
