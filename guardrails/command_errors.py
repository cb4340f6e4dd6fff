"""The one top-level error handler of every command: user errors are one line and exit 2, bugs keep their traceback.

Every runnable module ends with::

    if __name__ == "__main__":
        raise SystemExit(run_command(main))

``run_command`` calls ``main(argv)`` and turns what the user can fix into one line on stderr, naming the path
and the fix, with exit status 2 (130 for an interrupt), instead of a traceback:

- an output refused by ``guardrails.output_paths`` (a folder or file that is not this command's output);
- a missing path, a permission or read-only file system error (``EACCES``, ``EPERM``, ``EROFS``);
- a full disk (``ENOSPC``, ``EDQUOT``), also when a library reports it its own way: torch's
  ``PytorchStreamWriter failed writing file`` / ``unexpected pos`` when ``torch.save`` runs out of space, the
  Rust libraries' ``(os error 28)``;
- Ctrl-C (``KeyboardInterrupt``): "interrupted; OUT is unchanged" (or "complete" when the output was already
  in place), exit 130. SIGTERM (``kill``, a scheduler's time limit) is handled the same way: it raises
  ``Terminated``, a ``KeyboardInterrupt``, so every clean-up that runs on Ctrl-C runs; "terminated; ...", exit 143.

Outputs appear atomically (``guardrails.atomic_files``, ``guardrails.atomic_folder``), so the line can say
what each claimed output (``guardrails.output_paths.claimed_outputs``) holds: unchanged or complete, never
half-written. Anything else (a ``TypeError``, an ``IndexError`` in our code, ...) is a bug: it propagates with
its traceback. The commands' own ``main`` still catches the errors of its own domain (bad records, bad
config...) and prints them; this handler covers what every command shares.

Library module, no command line.
"""
from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Callable, Iterator

from guardrails.output_paths import OutputRefused, claimed_outputs, final_name

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 128 + signal.SIGTERM
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
_NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)
# how libraries that do not raise OSError report a full disk or a write refused by the file system
_NO_SPACE_TEXT = ("No space left on device", "os error 28", "PytorchStreamWriter failed writing file",
                  "unexpected pos", "file write failed", "iostream error")
_NOT_WRITABLE_TEXT = {"os error 30": errno.EROFS, "os error 13": errno.EACCES, "Read-only file system": errno.EROFS}


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: unwound like Ctrl-C, so temporaries are removed and outputs stay as they were."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Ctrl-C and SIGTERM that arrive in the block act once it ends. For code where the exception a handler raises
    would be lost: the at-fork hooks that run while a process pool starts its workers print such an exception
    as "ignored" and go on, and the command would run to its end as if never interrupted."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.signal(signum, lambda signum, frame: pending.append(signum)) for signum in held}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if pending:  # delivered again, now to the command's own handlers
            os.kill(os.getpid(), pending[0])


def outputs_state() -> str:
    """``out/hf is unchanged`` / ``out/hf is complete`` for every claimed output, or that nothing was claimed."""
    states = claimed_outputs()
    if not states:
        return "no output was written"
    return "; ".join(f"{_shown(path)} is {state}" for path, state in states.items())


def _shown(path: Path) -> str:
    """The path relative to the working folder when it lies inside it (as the user typed it, mostly)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _pending_output() -> str | None:
    """The first claimed output not yet complete: where a write that failed without a file name was going."""
    pending = [path for path, state in claimed_outputs().items() if state != "complete"]
    return _shown(pending[0]) if pending else None


def _classify(exc: BaseException) -> tuple[int, str | None] | None:
    """(errno, path) for an error the user can fix, else None. A temporary's name is shown as its final name."""
    if isinstance(exc, OSError) and exc.errno in (*_NO_SPACE, *_NOT_WRITABLE, errno.ENOENT, errno.ENOTDIR,
                                                  errno.EISDIR, errno.ENAMETOOLONG):
        # a copy that fails writing (shutil: filename = the source, filename2 = the destination) names the
        # file being written, not the one read
        written = exc.filename2 if exc.errno in (*_NO_SPACE, errno.EROFS) and exc.filename2 else exc.filename
        if written is None:
            return exc.errno, _pending_output()
        return exc.errno, _shown(final_name(Path(os.fsdecode(written))).absolute())
    text = str(exc)
    if isinstance(exc, OSError) or type(exc).__module__ in ("builtins", "safetensors_rust", "tokenizers"):
        if any(marker in text for marker in _NO_SPACE_TEXT):
            return errno.ENOSPC, _pending_output()
        for marker, code in _NOT_WRITABLE_TEXT.items():
            if marker in text:
                return code, _pending_output()
    return None


def user_error_line(prog: str, exc: BaseException) -> str | None:
    """The one line for a user error (``prog: error: ...``), or None when ``exc`` is a bug."""
    if isinstance(exc, OutputRefused) or (isinstance(exc, OSError) and exc.errno is None and str(exc)):
        return f"{prog}: error: {exc}"  # our own refusals, and OSErrors raised with a message that names the path
    found = _classify(exc)
    if found is None:
        return None
    code, path = found
    where = path or "the output"
    if code in _NO_SPACE:
        return (f"{prog}: error: no space left on the device while writing {where}; free some space or choose an"
                f" output on another disk ({outputs_state()})")
    if code == errno.EROFS:
        return (f"{prog}: error: cannot write {where}: read-only file system; choose an output on a writable disk"
                f" ({outputs_state()})")
    if code in _NOT_WRITABLE:  # reading or writing: the path's permissions are the user's to fix
        return (f"{prog}: error: {where}: permission denied; fix its permissions or choose another path"
                f" ({outputs_state()})")
    if code == errno.ENOENT:
        return f"{prog}: error: {where}: no such file or folder; check the path ({outputs_state()})"
    return f"{prog}: error: {where}: {os.strerror(code)}; check the path ({outputs_state()})"


def command_name(main: Callable[..., int]) -> str:
    """``conversion.megatron_to_hf`` for a module run with ``python -m`` (its ``__main__`` spec), else its module."""
    module = main.__module__
    if module == "__main__":
        spec = getattr(sys.modules["__main__"], "__spec__", None)
        module = spec.name if spec is not None else Path(sys.argv[0]).stem
    return module.rsplit(".", 1)[-1]


def run_command(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run ``main(argv)``; user errors and interrupts become one line and exit 2 / 130 / 143, bugs propagate."""
    prog = command_name(main)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main_thread else None
    try:
        return main(argv)
    except Terminated:
        print(f"{prog}: terminated (SIGTERM); {outputs_state()}", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; {outputs_state()}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        line = user_error_line(prog, exc)
        if line is None:
            raise
        print(line, file=sys.stderr)
        return EXIT_USER_ERROR
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
