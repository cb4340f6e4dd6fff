"""Compiled-language checks in the sandbox: files placed in the working folder, then phases (compile, run).

    job = Job(files=(("main_test.go", text),), phases=(Phase("compile", go_argv, 60.0, env), Phase("run", ...)),
              binds=(shared_build,))
    outcomes = JobRunner(limits).run(job)   # one PhaseOutcome per phase, in order; later phases not run
    result = judge(outcomes)                # a ProgramResult: passed / failed (sanitised reason) / timed out

:class:`JobRunner` is the one seam between the Go and Rust checks and the sandbox: it takes an argv per phase,
the files, each phase's time limit and the read-only folders the phases need, and reports each phase's exit
status, whether it timed out, and a bounded tail of its output. It runs a small trusted launcher as the
sandbox's program; the launcher writes the files, runs each phase with ``subprocess`` under its own wall-clock
limit (killing its whole process group on time-out), drains the output (a correct program may print any
amount: only the last bytes are kept, never a failure) and prints one JSON line with the outcomes. The
sandbox's own wall clock is the sum of the phases' limits plus a margin. Today the launcher and the test binary
share one sandbox (same user), so the walls hold for both but a hostile binary could tamper with the launcher's
report; the sandbox's argv primitive (run each phase itself, judged outside) removes that, and only
:meth:`JobRunner.run` changes then.

:func:`judge` turns outcomes into a result whose reason is a fixed phrase chosen here (``compile error
(E0308)``, ``test failed``, ``panicked``, ``killed by SIGKILL``), never the program's output. Library module.
"""
from __future__ import annotations

import base64
import json
import re
import signal
from dataclasses import dataclass, field

import sys

from evaluation.sandbox import (ProgramResult, Sandbox, SandboxLimits, bwrap_argv, find_bwrap, interpreter_paths,
                                rebind_under_hidden)

TAIL_BYTES = 4096  # of each phase's output, kept for judging only (never written to results)


@dataclass(frozen=True)
class Phase:
    name: str  # "compile" or "run"
    argv: tuple[str, ...]
    timeout_s: float
    env: tuple[tuple[str, str], ...] = ()  # "{work}" in a value stands for the working folder


@dataclass(frozen=True)
class Job:
    files: tuple[tuple[str, str], ...]  # (name in the working folder, text)
    phases: tuple[Phase, ...]
    binds: tuple[str, ...] = ()  # folders the phases read (toolchain, shared build): read-only in the sandbox


@dataclass(frozen=True)
class PhaseOutcome:
    name: str
    status: str  # "ok", "failed", "timed out"
    returncode: int | None
    tail: str = field(default="", repr=False)  # the end of the phase's output, for judge() only


_LAUNCHER = r'''
import base64, json, os, selectors, signal, subprocess, time
JOB = json.loads(JOB_JSON)
for name, text in JOB["files"]:
    with open(name, "w", encoding="utf-8") as handle:
        handle.write(text)
outcomes = []
for phase in JOB["phases"]:
    env = {name: value.replace("{work}", os.getcwd()) for name, value in phase["env"]}
    proc = subprocess.Popen(phase["argv"], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    deadline, tail, status = time.monotonic() + phase["timeout_s"], b"", ""
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                status = "timed out"
                break
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            tail = (tail + chunk)[-TAIL:]
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    code = proc.wait()
    status = status or ("ok" if code == 0 else "failed")
    outcomes.append([phase["name"], status, code, base64.b64encode(tail).decode("ascii")])
    if status != "ok":
        break
print("\n" + json.dumps({"outcomes": outcomes}))
'''


def launcher_program(job: Job) -> str:
    """The trusted Python program the sandbox runs for ``job`` (pure: the job is embedded as JSON)."""
    encoded = json.dumps({"files": job.files, "phases": [{"name": p.name, "argv": p.argv, "timeout_s": p.timeout_s,
                                                           "env": p.env} for p in job.phases]})
    return f"JOB_JSON = {encoded!r}\nTAIL = {TAIL_BYTES}\n{_LAUNCHER}"


def compiled_limits(job_seconds: float, base: SandboxLimits = SandboxLimits()) -> SandboxLimits:
    """Room for a compiler: more memory, processes (threads count), file and tmpfs space than a Python test."""
    return SandboxLimits(timeout_s=job_seconds, memory_bytes=max(base.memory_bytes, 2 << 30),
                         max_processes=max(base.max_processes, 64), max_output_bytes=base.max_output_bytes,
                         max_file_bytes=max(base.max_file_bytes, 64 << 20), tmpfs_bytes=max(base.tmpfs_bytes, 512 << 20),
                         open_files=max(base.open_files, 1024))


class JobRunner:
    """Runs jobs whose phases fit ``phase_seconds`` in total and read only ``binds`` besides the system (one
    sandbox set-up check, then thread-safe runs)."""

    MARGIN_S = 5.0  # the launcher's own start and bookkeeping

    def __init__(self, phase_seconds: float, binds: tuple[str, ...] = ()) -> None:
        self.limits = compiled_limits(phase_seconds + self.MARGIN_S)
        self.binds = binds
        self.sandbox = Sandbox(self.limits)
        # today's sandbox shows the whole system read-only but hides /tmp: a bind under it is bound back
        python = sys.executable
        self.sandbox.argv = bwrap_argv(find_bwrap(), python, self.limits,
                                       rebind_under_hidden([*interpreter_paths(python), *binds]))

    def run(self, job: Job) -> list[PhaseOutcome]:
        if not set(job.binds) <= set(self.binds):
            raise ValueError(f"the job reads {sorted(set(job.binds) - set(self.binds))}, not bound in this runner")
        result = self.sandbox.run(launcher_program(job))
        if result.status == "timed out":
            return [PhaseOutcome(job.phases[0].name, "timed out", None)]
        lines = [line for line in result.output.splitlines() if line.startswith('{"outcomes": ')]
        if result.status != "passed" or not lines:
            # the launcher did not finish: the program took it down (e.g. a memory limit hit the whole sandbox)
            return [PhaseOutcome(job.phases[0].name, "failed", None, result.reason)]
        return [PhaseOutcome(name, status, code, base64.b64decode(tail).decode("utf-8", "replace"))
                for name, status, code, tail in json.loads(lines[-1])["outcomes"]]


_RUST_ERROR = re.compile(r"error\[(E\d{4})\]")


def _signal_name(code: int | None) -> str | None:
    if code is None:
        return None
    number = -code if code < 0 else code - 128 if code > 128 else 0
    return signal.Signals(number).name if number in {s.value for s in signal.Signals} else None


def judge(outcomes: list[PhaseOutcome], seconds: float = 0.0) -> ProgramResult:
    """Passed when every phase ran and succeeded; otherwise a fixed phrase naming the phase and the kind."""
    for outcome in outcomes:
        if outcome.status == "ok":
            continue
        if outcome.status == "timed out":
            reason = "" if outcome.name == "run" else f"{outcome.name} phase over its time limit"
            return ProgramResult("timed out", reason, "", seconds)
        if outcome.name == "compile":
            code = _RUST_ERROR.search(outcome.tail)
            return ProgramResult("failed", f"compile error ({code.group(1)})" if code else "compile error", "", seconds)
        killed = _signal_name(outcome.returncode)
        if killed and killed != "SIGABRT":
            reason = f"killed by {killed}"
        elif "assertion failed" in outcome.tail or "assertion `left" in outcome.tail:  # Rust's assert_eq! panics
            reason = "test failed"
        elif "panic" in outcome.tail:  # Go's runtime panic ("panic:"), Rust's other panics ("panicked at")
            reason = "panicked"
        elif "--- FAIL" in outcome.tail:  # Go: a testify assertion failed
            reason = "test failed"
        else:
            reason = f"{outcome.name} phase failed (exit status {outcome.returncode})"
        return ProgramResult("failed", reason, "", seconds)
    return ProgramResult("passed", "", "", seconds)
