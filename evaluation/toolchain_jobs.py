"""Compiled-language checks in the sandbox: a Go or Rust test program compiled, then run, behind the same wall.

    runner = JobRunner("go", compile_s=60, run_s=20)
    result = runner.run(go_job(build, text, 60, 20))   # evaluation.toolchains builds the ArgvProgram

The seam between the Go/Rust checks and the sandbox: ``Sandbox.run_argv`` (``evaluation.sandbox_argv``) runs
the phases (compile, then run) in the working folder, each under its own wall-clock limit, with the files
placed there, the toolchain's shared build bound read-only and the sandbox's own ``/proc`` (Go and rustc read
``/proc/self/exe``). The run phase goes through :data:`DRAIN`, a few lines of trusted Python run by the
sandbox's interpreter: it runs the test binary, reads all of its output and passes on only the last
:data:`TAIL_BYTES`, and exits with the binary's status, so a correct program may print any amount without
reaching the sandbox's output cap.

:func:`judge` turns the sandbox's result into a ProgramResult whose reason is a fixed phrase chosen here
(``compile error (E0308)``, ``test failed``, ``panicked``, ``killed by SIGKILL``), never program output. A run
that exits 0 passes only when the test harness's own success line ends it (Go: ``PASS``; Rust: ``test result:
ok.``): a Rust completion that calls ``std::process::exit(0)`` before the tests ran fails. A hostile program
can still print that line itself and exit 0 (the sandbox's caveat for every native program); it cannot leave
the wall. Library module.
"""
from __future__ import annotations

import re
import signal
import time

from evaluation.sandbox import ProgramResult, Sandbox, SandboxLimits
from evaluation.sandbox_argv import ArgvProgram, ArgvResult, signal_name

TAIL_BYTES = 4096  # of the test binary's output: judged here, never written to results
SANDBOX_PYTHON = "/usr/bin/python3"  # the sandbox's interpreter (evaluation.sandbox binds it); runs DRAIN
DRAIN = r'''import os, signal, subprocess, sys
child = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
tail = b""
while True:
    chunk = os.read(child.stdout.fileno(), 65536)
    if not chunk:
        break
    tail = (tail + chunk)[-TAIL:]
code = child.wait()
os.write(1, tail)
sys.exit(code if code >= 0 else 128 - code)
'''.replace("TAIL", str(TAIL_BYTES))
SUCCESS = {"go": re.compile(rb"(?m)^PASS\s*\Z"), "rust": re.compile(rb"test result: ok\.[^\n]*\n\s*\Z")}
_RUST_ERROR = re.compile(rb"error\[(E\d{4})\]")


def drained(argv: tuple[str, ...]) -> tuple[str, ...]:
    """``argv`` run through :data:`DRAIN` (pure)."""
    return (SANDBOX_PYTHON, "-I", "-S", "-c", DRAIN, *argv)


def compiled_limits(compile_s: float, run_s: float, base: SandboxLimits = SandboxLimits()) -> SandboxLimits:
    """Room for a compiler: more memory, processes (threads count), file and tmpfs space than a Python test."""
    return SandboxLimits(timeout_s=max(compile_s, run_s), memory_bytes=max(base.memory_bytes, 2 << 30),
                         max_processes=max(base.max_processes, 64), max_output_bytes=base.max_output_bytes,
                         max_file_bytes=max(base.max_file_bytes, 64 << 20), tmpfs_bytes=max(base.tmpfs_bytes, 512 << 20),
                         open_files=max(base.open_files, 1024))


def judge(language: str, result: ArgvResult) -> ProgramResult:
    """Passed when every phase exited 0 and the tests' own success line ends the output; else a fixed phrase."""
    if result.status == "timed out":
        compiling = bool(result.phases) and result.phases[-1].name == "compile"
        return ProgramResult("timed out", "compile phase over its time limit" if compiling else "", result.seconds)
    last = result.phases[-1] if result.phases else None
    if last is None:
        return ProgramResult("failed", result.reason, result.seconds)  # the sandbox's own bounded reason
    if last.name == "compile" and (last.status != "exit" or last.code != 0):
        code = _RUST_ERROR.search(result.output)
        return ProgramResult("failed", f"compile error ({code.group(1).decode()})" if code else "compile error",
                             result.seconds)
    tail = result.output[-TAIL_BYTES:]
    if result.status == "passed":
        if SUCCESS[language].search(tail):
            return ProgramResult("passed", "", result.seconds)
        return ProgramResult("failed", "exited before the tests finished", result.seconds)
    if last.status == "signal" or (last.status == "exit" and last.code > 128 and last.code - 128 != signal.SIGABRT):
        number = last.code if last.status == "signal" else last.code - 128
        return ProgramResult("failed", f"killed by {signal_name(number)}", result.seconds)
    if b"assertion failed" in tail or b"assertion `left" in tail:  # Rust's assert_eq! panics
        reason = "test failed"
    elif b"panic" in tail:  # Go's runtime panic ("panic:"), Rust's other panics ("panicked at")
        reason = "panicked"
    elif b"--- FAIL" in tail:  # Go: a testify assertion failed
        reason = "test failed"
    else:
        reason = result.reason if result.reason.startswith("output over") else f"run phase: exit status {last.code}"
    return ProgramResult("failed", reason, result.seconds)


class JobRunner:
    """One sandbox set-up check, then thread-safe runs of Go or Rust test programs."""

    def __init__(self, language: str, compile_s: float, run_s: float) -> None:
        self.language = language
        self.limits = compiled_limits(compile_s, run_s)
        self.sandbox = Sandbox(self.limits)

    def run(self, program: ArgvProgram) -> ProgramResult:
        started = time.monotonic()
        result = self.sandbox.run_argv(program)
        judged = judge(self.language, result)
        return ProgramResult(judged.status, judged.reason, time.monotonic() - started)
