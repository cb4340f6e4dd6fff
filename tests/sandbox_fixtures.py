"""Shared helpers of the sandbox tests: one sandbox per test module, dedented programs, the process-limit program, process trees, a gcc check."""
from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from evaluation.sandbox import Sandbox, SandboxLimits, interpreter_facts

LIMITS = SandboxLimits(timeout_s=2.0, memory_bytes=256 << 20, max_output_bytes=64 << 10)


def make_box(limits: SandboxLimits = LIMITS, **kwargs) -> Sandbox:
    return Sandbox(limits, **kwargs)


def without_hook(box: Sandbox) -> bytes:
    """An audit hook that refuses nothing, compiled for the box's interpreter: to show what the real one stops."""
    return compiled_hook(box, "def install(trusted_roots):\n    pass\n")


def compiled_hook(box: Sandbox, source: str) -> bytes:
    """``source`` as the driver receives the audit hook: compiled by the box's interpreter."""
    return interpreter_facts(box.python, source)[2]


def run(box: Sandbox, source: str):
    return box.run(textwrap.dedent(source))


def process_limit_program(expected: int, attempts: int) -> str:
    """A program that starts ``/bin/sleep`` children until the process limit refuses one, asserts that exactly
    ``expected`` started, and ends them."""
    return textwrap.dedent(f"""\
        import subprocess
        children = []
        try:
            for _ in range({attempts}):
                children.append(subprocess.Popen(["/bin/sleep", "30"]))
        except OSError:
            pass
        assert len(children) == {expected}, len(children)
        for child in children:
            child.kill()
            child.wait()
        """)


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (through /proc/PID/task/TID/children)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            tasks = list(Path(f"/proc/{current}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                todo.extend(int(c) for c in (task / "children").read_text().split())
            except (OSError, ValueError):
                pass
    return found


def need_gcc() -> str:
    gcc = shutil.which("gcc")
    if gcc is None or not gcc.startswith("/usr/"):
        pytest.skip("gcc under /usr is needed to build the test's C programs inside the sandbox")
    return gcc
