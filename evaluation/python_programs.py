"""Python programs exactly as the harnesses score them: the program text, and the BigCode harness's execution prelude.

    text = humaneval_program(problem, prefix, completion)   # BigCode ``humaneval``: prefix + completion + tests
    text = humaneval_x_program(problem, completion)          # HumanEval-X / HumanEvalPack Python files
    sandbox.run(harness_wrapped(text))                       # run as the harness runs it

The BigCode harness joins ``prompt.strip() + generation`` with its reference ``"\\n" + test + "\\n" +
"check(ENTRY)"`` by one newline, then ``exec``s the text in a fresh ``{}`` namespace (so ``__name__`` is
``"builtins"``: a completion's ``if __name__ == "__main__":`` block does not run), after its
``reliability_guard`` (``exit``, ``os.kill``, ``os.system``, ``shutil.rmtree``, ``subprocess.Popen`` ... set to
None, ``faulthandler`` off) and with stdout/stderr swallowed (so printing is never a failure, however much) and
stdin unreadable. :func:`harness_wrapped` does the same inside the sandbox; an exception still ends the program
with its traceback, which the sandbox turns into the failure reason.

HumanEval-X (and HumanEvalPack, for Python) prepend an import block, cut the completion at its first
non-indented line and run ``prompt + completion + "\\n" + test``, whose last line calls ``check``. Their block
imports ``numpy``; the sandbox's interpreter has the standard library only, so those two lines are left out
(no HumanEval solution uses numpy; written in the README). Library module.
"""
from __future__ import annotations

# HumanEval-X's IMPORT_HELPER["python"] without its two numpy lines
PYTHON_IMPORTS = ("import math", "import re", "import sys", "import copy", "import datetime", "import itertools",
                  "import collections", "import heapq", "import statistics", "import functools", "import hashlib",
                  "import string", "from typing import *", "from collections import *")

# the harness's unsafe_execute, minus what the sandbox does itself (the temporary folder, the wall-clock limit).
# No ``with`` (the harness's swallow_io) and no ``try`` around the exec: nothing written in Python runs between the
# program's failure and the end of the module, so a program that rewrites contextlib (or any library code) cannot
# swallow its own failing assertion; the streams need no restoring, as the driver writes its record to fd 1 itself.
_PRELUDE = '''import builtins as _b, faulthandler as _f, io as _io, os as _o, shutil as _sh
import subprocess as _sp, sys as _s


class _WriteOnly(_io.StringIO):
    def read(self, *a, **k):
        raise OSError
    readline = readlines = read

    def readable(self, *a, **k):
        return False


_f.disable()
_b.exit = _b.quit = None
_o.environ["OMP_NUM_THREADS"] = "1"
for _name in ("kill", "system", "putenv", "remove", "removedirs", "rmdir", "fchdir", "setuid", "fork", "forkpty",
              "killpg", "rename", "renames", "truncate", "replace", "unlink", "fchmod", "fchown", "chmod", "chown",
              "chroot", "lchflags", "lchmod", "lchown", "getcwd", "chdir"):
    setattr(_o, _name, None)
_sh.rmtree = _sh.move = _sh.chown = None
_sp.Popen = None
_b.help = None
for _name in ("ipdb", "joblib", "resource", "psutil", "tkinter"):
    _s.modules[_name] = None
_s.stdout = _s.stderr = _s.stdin = _WriteOnly()
exec(compile(PROGRAM, "program.py", "exec"), {})
'''


def harness_wrapped(program: str) -> str:
    """``program`` run as the BigCode harness runs it (see the module docstring)."""
    return f"PROGRAM = {program!r}\n{_PRELUDE}"


def humaneval_program(problem: dict, prefix: str, completion: str) -> str:
    """The BigCode ``humaneval`` task's text: ``prefix + completion`` (the candidate), a newline, the reference."""
    return f"{prefix}{completion}\n\n{problem['test']}\ncheck({problem['entry_point']})"


def first_block(completion: str) -> str:
    """HumanEval-X's cut: the completion up to its first non-blank line that is not indented."""
    kept = []
    for line in completion.split("\n"):
        if line.strip() and line[0] not in " \t":
            break
        kept.append(line)
    return "\n".join(kept)


def humaneval_x_program(problem: dict, completion: str) -> str:
    """HumanEval-X's Python text: the import block, the prompt, the cut completion, the tests (which call check)."""
    return "\n".join(PYTHON_IMPORTS) + "\n" + problem["prompt"] + first_block(completion) + "\n" + problem["test"] + "\n"
