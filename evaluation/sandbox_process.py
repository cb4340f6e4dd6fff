"""Start one bubblewrap sandbox as an unprivileged user, in its cgroup before untrusted code runs; collect its output.

    outcome = launch(Launch(launcher, mounts, env, command, files, seccomp, stdin, timeout_s, max_output, cgroups,
                            max_pids, memory_bytes))
    outcome.output, outcome.verdict, outcome.returncode, outcome.oom_kills
    started = Started(spec)       # the same in two steps: start ahead (stdin's preamble sent), then
    started.finish(program)       # send the rest and collect (the clock starts here)

bwrap runs as an unprivileged user (``nobody`` when the harness is root; else the harness's own), so the sandbox's
processes are never host root and the kernel applies RLIMIT_NPROC and file permissions to them. The handshake
keeps untrusted code from running before the limits hold: bwrap reports the sandbox's first process on
``--info-fd`` and waits on ``--block-fd``; meanwhile that process moves into the sandbox's cgroup, so every
later process is born inside it (the outer bwrap only waits for it, outside). Files (the working folder's and
``/etc/passwd``) and the seccomp program reach bwrap as memfds. The wall clock starts when the sandbox is
released; on timeout, at the output cap, or when the output ends, the sandbox's PID 1 is killed (the whole PID
namespace dies with it), then bwrap's process group and every cgroup member. Library module, no command line.
"""
from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass, field
from typing import Sequence

from evaluation.sandbox_binds import SANDBOX_UID, WORK_DIR
from evaluation.sandbox_cgroup import CgroupParents, SandboxCgroup

STARTUP_S = 30.0  # bubblewrap's own set-up (mounts, namespaces): generous, it is trusted


@dataclass(frozen=True)
class Launch:
    launcher: Sequence[str]  # bwrap, after ``setpriv`` when the uid must change (see unprivileged_launcher)
    mounts: Sequence[str]  # from sandbox_binds.bwrap_mounts
    env: dict[str, str]
    command: Sequence[str]  # what runs inside (the driver)
    files: dict[str, tuple[bytes, int]]  # absolute path inside -> (content, mode)
    seccomp: bytes
    stdin: bytes
    timeout_s: float
    max_output: int
    cgroups: CgroupParents = field(default_factory=lambda: CgroupParents(None, None, ""))
    max_pids: int = 0
    memory_bytes: int = 0


@dataclass(frozen=True)
class Outcome:
    output: bytes  # stdout and stderr together, at most max_output bytes: untrusted
    verdict: str  # "" (it ended), "timed out", "output limit", "sandbox did not start"
    returncode: int
    seconds: float
    oom_kills: int


def unprivileged_launcher(bwrap: str, setpriv: str | None, uid: int | None) -> list[str]:
    """bwrap, started as ``uid`` when given. setpriv changes the uid, not Popen(user=...): that rules out vfork, and
    forking a harness that holds a model costs tens of milliseconds per sandbox."""
    if uid is None:
        return [bwrap]
    if setpriv is None:
        raise ValueError("setpriv (util-linux) is needed to start the sandbox as an unprivileged user")
    return [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", bwrap]


def bwrap_argv(launch: Launch, seccomp_fd: int, info_fd: int, block_fd: int,
               file_fds: Sequence[tuple[int, str, int]]) -> list[str]:
    """The whole sandbox as one argv list (pure: the file descriptors are already open)."""
    argv = [*launch.launcher, "--unshare-all", "--unshare-user", "--disable-userns", "--uid", str(SANDBOX_UID),
            "--gid", str(SANDBOX_UID), "--cap-drop", "ALL", "--die-with-parent", "--new-session",
            "--hostname", "sandbox", *launch.mounts]
    for fd, path, mode in file_fds:
        argv += ["--perms", f"{mode:o}", "--file", str(fd), path]
    argv += ["--chdir", WORK_DIR, "--clearenv"]
    for name, value in sorted(launch.env.items()):
        argv += ["--setenv", name, value]
    return argv + ["--info-fd", str(info_fd), "--block-fd", str(block_fd), "--seccomp", str(seccomp_fd), "--",
                   *launch.command]


def _memfd(data: bytes) -> int:
    fd = os.memfd_create("sandbox-input", 0)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _read_all(fd: int, deadline: float, limit: int) -> tuple[bytes, bool]:
    """Read ``fd`` until EOF; (data, True), or what came and False at the deadline or beyond ``limit`` bytes."""
    data = b""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while len(data) <= limit:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                return data, False
            chunk = os.read(fd, 65536)
            if not chunk:
                return data, True
            data += chunk
    return data, False


class Started:
    """One sandbox past its start: bwrap set up, the first process in its cgroup and released, the preamble (stdin's
    first part) sent. ``finish(rest)`` sends the rest of stdin and collects the output; ``end()`` kills it all."""

    def __init__(self, spec: Launch) -> None:
        self.spec, self.failed = spec, None
        self.group = (SandboxCgroup(spec.cgroups, spec.max_pids, spec.memory_bytes)
                      if spec.cgroups.pids or spec.cgroups.memory else None)
        self.stack = contextlib.ExitStack()
        try:
            self._start()
        except BaseException:
            self.end()
            raise

    def _start(self) -> None:
        spec = self.spec
        seccomp_fd = _memfd(spec.seccomp)
        info_r, info_w = os.pipe()
        block_r, block_w = os.pipe()
        file_fds = [(_memfd(content), path, mode) for path, (content, mode) in spec.files.items()]
        child_fds = [seccomp_fd, info_w, block_r, *(fd for fd, _, _ in file_fds)]
        for fd in (info_r, block_w):
            self.stack.callback(os.close, fd)
        if self.group is not None:
            self.stack.enter_context(self.group)
        try:
            proc = subprocess.Popen(bwrap_argv(spec, seccomp_fd, info_w, block_r, file_fds), stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, pass_fds=child_fds,
                                    start_new_session=True, env={}, cwd="/")
        finally:
            for fd in child_fds:
                os.close(fd)
        self.first = _Sandboxed(proc)
        self.stack.callback(self.first.end)
        info, _ = _read_all(info_r, time.monotonic() + STARTUP_S, 1 << 16)
        if not self.first.found(info):  # bwrap refused before the sandbox existed; its own message is the output
            output, _ = _read_all(proc.stdout.fileno(), time.monotonic() + STARTUP_S, spec.max_output)
            self.failed = Outcome(output, "sandbox did not start", proc.wait(), 0.0, 0)
            return
        if self.group is not None:  # the sandbox's first process: every later one descends from it
            self.group.adopt(self.first.pid)
        with contextlib.suppress(BrokenPipeError):
            os.write(block_w, b"x")  # released: what runs now is the trusted driver, reading its preamble
            proc.stdin.write(spec.stdin)
            proc.stdin.flush()

    def finish(self, rest: bytes = b"") -> Outcome:
        """Send the rest of stdin (the program: untrusted from here on), collect the output, end the sandbox."""
        if self.failed is not None:
            self.end()
            return self.failed
        spec, proc = self.spec, self.first.proc
        started = time.monotonic()
        try:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.write(rest)
                proc.stdin.close()
            output, ended = _read_all(proc.stdout.fileno(), started + spec.timeout_s, spec.max_output)
            verdict = "" if ended else ("output limit" if len(output) > spec.max_output else "timed out")
            if ended:  # let bwrap exit by itself, or its status would be our SIGKILL
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=max(5.0, spec.timeout_s))
            seconds = time.monotonic() - started
            self.first.end()
            return Outcome(output[: spec.max_output], verdict, proc.returncode, seconds,
                           self.group.oom_kills() if self.group is not None else 0)
        finally:
            self.end()

    def end(self) -> None:
        self.stack.close()


def launch(spec: Launch) -> Outcome:
    """Start a sandbox and run it to its end: ``spec.stdin`` is all its input."""
    return Started(spec).finish()


class _Sandboxed:
    """The outer bwrap and the sandbox's first process (bwrap's PID 1), held by a pidfd: its number may be reused."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc, self.pid, self.pidfd = proc, 0, -1

    def found(self, info: bytes) -> bool:
        try:
            self.pid = int(json.loads(info)["child-pid"])
            self.pidfd = os.pidfd_open(self.pid)
        except (ValueError, KeyError, TypeError, OSError):
            return False
        return True

    def end(self) -> None:
        """Kill PID 1 first (the PID namespace dies with it, and the outer bwrap reaps it), then the outer bwrap's
        process group; wait for it; close the pipes."""
        if self.pidfd >= 0:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            os.close(self.pidfd)
            self.pidfd = -1
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=1.0)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError, ValueError):
                stream.close()
