"""What a sandboxed program may use (``SandboxLimits``), and the resource limits (rlimits) its first stage sets.

    limits = SandboxLimits(timeout_s=3.0)
    rlimits(limits, cpu_seconds=4)   # {"RLIMIT_CPU": (4, 5), "RLIMIT_AS": ..., ...}: what the driver applies

``memory_bytes`` bounds each process's address space (RLIMIT_AS) and, where a memory cgroup can be written,
all the sandbox's memory together: its processes, its tmpfs files and pipe buffers (``sandbox_cgroup``).
``max_processes`` counts the program's processes and threads: RLIMIT_NPROC in the sandbox's own user namespace
(the program never runs as root, so the kernel applies it) and, where a pids cgroup can be written, ``pids.max``
as well. Library module, no command line.
"""
from __future__ import annotations

from dataclasses import dataclass

SANDBOX_PROCESSES = 2  # bwrap's PID 1 and the driver: counted by pids.max and by RLIMIT_NPROC (per user namespace)


class SandboxUnavailable(RuntimeError):
    """bubblewrap, libseccomp or a usable interpreter is missing, or the sandbox cannot be built here; nothing runs."""


@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float = 3.0  # wall clock for the program itself (the sandbox's start-up is not counted)
    memory_bytes: int = 1 << 30  # address space per process; all memory together where a memory cgroup is writable
    max_processes: int = 16  # processes and threads the program may add
    max_output_bytes: int = 1 << 20  # stdout + stderr together
    max_file_bytes: int = 16 << 20  # one file
    tmpfs_bytes: int = 64 << 20  # the whole writable folder
    open_files: int = 256
    socket_families: tuple[int, ...] = ()  # socket() families allowed (e.g. socket.AF_INET); none by default


def rlimits(limits: SandboxLimits, cpu_seconds: float) -> dict[str, tuple[int, int]]:
    """The limits the sandbox's first stage sets on itself before anything untrusted runs (children inherit them)."""
    cpu = int(cpu_seconds) + 1
    processes = limits.max_processes + SANDBOX_PROCESSES
    return {"RLIMIT_CPU": (cpu, cpu + 1), "RLIMIT_AS": (limits.memory_bytes, limits.memory_bytes),
            "RLIMIT_FSIZE": (limits.max_file_bytes, limits.max_file_bytes), "RLIMIT_CORE": (0, 0),
            "RLIMIT_NOFILE": (limits.open_files, limits.open_files), "RLIMIT_NPROC": (processes, processes)}
