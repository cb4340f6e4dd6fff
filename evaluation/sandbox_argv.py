"""Programs other than Python in the sandbox: the request (phases, files, read-only binds) and how its result is judged.

    program = ArgvProgram(phases=(Phase("compile", ("gcc", "-o", "main", "main.c"), timeout_s=20),
                                  Phase("run", ("./main",), timeout_s=3)),
                          files={"main.c": source.encode()}, ro_binds=("/opt/go",), env={"GOCACHE": "/tmp/gocache"})
    result = sandbox.run_argv(program)        # evaluation.sandbox.Sandbox
    result.status, result.reason, result.phases, result.output

Same wall as Python programs (unprivileged uid, binds, cgroup, seccomp, rlimits, output cap). The phases run
one after the other in the working folder, each with its own wall-clock limit, by the trusted
``sandbox_driver.py``; the first phase that does not exit 0 ends the run. ``passed`` means only that every
phase exited 0: unlike a Python program (whose pass the driver proves with a nonce it never lets the program
reach), a native program can exit 0 without doing its job, so a caller that needs more checks ``output`` (raw,
untrusted, capped at ``max_output_bytes``: never store it in results) or files the run printed. ``reason`` is
bounded and never holds program output: the phase, and its exit status, signal or time limit. Library module.
"""
from __future__ import annotations

import re
import signal
from dataclasses import dataclass, field
from typing import Mapping

PHASE_NAME = re.compile(r"[A-Za-z0-9_-]{1,32}")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
STARTUP_S = 5.0  # the phase driver's own start and clean-up, on top of the phases' limits


@dataclass(frozen=True)
class Phase:
    name: str  # letters, digits, _ and -
    argv: tuple[str, ...]  # run in the working folder; PATH is /usr/local/bin:/usr/bin:/bin plus the caller's env
    timeout_s: float


@dataclass(frozen=True)
class ArgvProgram:
    phases: tuple[Phase, ...]
    files: Mapping[str, bytes] = field(default_factory=dict)  # relative path in the working folder -> content
    executable: frozenset[str] = frozenset()  # which of ``files`` get mode 0755 (else 0644)
    ro_binds: tuple[str, ...] = ()  # host folders or files, visible read-only at the same path
    env: Mapping[str, str] = field(default_factory=dict)
    proc: bool = False  # mount the sandbox's own /proc (Go and rustc read /proc/self/exe)

    def check(self) -> None:
        """Raise ValueError naming the field when the request cannot be run as written."""
        if not self.phases:
            raise ValueError("ArgvProgram.phases: give at least one Phase")
        for phase in self.phases:
            if not PHASE_NAME.fullmatch(phase.name) or not phase.argv or not phase.timeout_s > 0:
                raise ValueError(f"Phase {phase.name!r}: needs a name of letters, digits, _ or -, an argv and a "
                                 "positive timeout_s")
        for name in self.files:
            if name.startswith("/") or any(part in ("", ".", "..") for part in name.split("/")):
                raise ValueError(f"ArgvProgram.files: {name!r} is not a plain relative path (no .., no /...)")
        for path in self.ro_binds:
            if not path.startswith("/") or path.rstrip("/") == "":
                raise ValueError(f"ArgvProgram.ro_binds: {path!r} must be an absolute path other than /")
        for name in self.env:
            if not ENV_NAME.fullmatch(name):
                raise ValueError(f"ArgvProgram.env: {name!r} is not a variable name (letters, digits, _)")
        if not self.executable <= set(self.files):
            raise ValueError(f"ArgvProgram.executable: {sorted(self.executable - set(self.files))} are not in files")


@dataclass(frozen=True)
class PhaseOutcome:
    name: str
    status: str  # "exit", "signal" or "timeout"
    code: int  # exit status or signal number (0 for a timeout)
    seconds: float


@dataclass(frozen=True)
class ArgvResult:
    status: str  # "passed" (every phase exited 0), "failed" or "timed out"
    reason: str  # "" when passed; else the phase and what ended it, never program output
    phases: tuple[PhaseOutcome, ...]
    output: bytes  # every phase's stdout and stderr, capped: untrusted, for the caller's own checks only
    seconds: float


def phase_records(output: bytes, nonce: str) -> tuple[tuple[PhaseOutcome, ...], bytes]:
    """The driver's records (its lines: the nonce, then ``phase ...``) in order, and the output without them."""
    found, kept, marker = [], [], b"\n" + nonce.encode() + b" phase "
    for piece in (b"\n" + output).split(marker):
        if not kept:  # what came before the first record
            kept.append(piece)
            continue
        record, _, rest = piece.partition(b"\n")
        parts = record.decode("ascii", errors="replace").split()
        if len(parts) == 4:
            code = 0 if parts[1] == "timeout" else int(parts[2])
            found.append(PhaseOutcome(parts[0], parts[1], code, float(parts[3])))
        kept.append(rest)
    return tuple(found), b"".join(kept)[1:]


def judge_argv(program: ArgvProgram, phases: tuple[PhaseOutcome, ...], verdict: str, returncode: int,
               oom_kills: int, max_output: int) -> tuple[str, str]:
    """(status, reason) from what the phase driver recorded and how the sandbox ended."""
    memory = " (memory limit)" if oom_kills else ""
    for done in phases:
        if done.status == "timeout":
            limit = next(p.timeout_s for p in program.phases if p.name == done.name)
            return "timed out", f"phase {done.name}: over {limit:g}s"
        if done.status == "signal":
            return "failed", f"phase {done.name}: killed by {signal_name(done.code)}{memory}"
        if done.code != 0:
            return "failed", f"phase {done.name}: exit status {done.code}{memory}"
    if verdict == "output limit":
        return "failed", f"output over {max_output} bytes"
    if verdict:
        return ("timed out", "the sandbox ran over its time") if verdict == "timed out" else ("failed", verdict)
    if len(phases) == len(program.phases) and returncode == 0:
        return "passed", ""
    return "failed", f"the phase driver ended early (exit status {returncode}){memory}"


def signal_name(number: int) -> str:
    """``SIGKILL`` for 9; ``signal N`` for a number that names no signal (the judges of native programs)."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
