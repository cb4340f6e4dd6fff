"""How much memory a command may still take, so that an absurd size is refused with the numbers up front.

``training.gpt_samples --seq-length 1000000000`` once grew to 11 GB in two minutes on its way to terabytes; a
build whose arrays cannot fit is refused before it starts instead::

    check_fits("the index maps of 3 epochs", needed_bytes, "lower --num-samples")   # raises MemoryBudgetError

The budget is the kernel's ``MemAvailable`` (what can be allocated without swapping), lowered to the cgroup's
limit when the process runs in one (a container, a SLURM job). Library module, no command line.
"""
from __future__ import annotations

import os
from pathlib import Path


class MemoryBudgetError(ValueError):
    """A size whose arrays cannot fit in this machine's memory; the message gives both numbers."""


def available_memory() -> int | None:
    """Bytes this process can still allocate without swapping, or None when the system does not say."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:  # cgroup v2: a container or job limit below the machine's memory
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        if limit != "max":
            found.append(max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    if not found:
        try:
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            return None
    return min(found)


def human_bytes(count: float) -> str:
    """``12.3 GB``: decimal units, as disks and ``free -h --si`` count."""
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(count) < 1000 or unit == "PB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


def check_fits(what: str, needed: int, fix: str) -> None:
    """Raise MemoryBudgetError when ``needed`` bytes for ``what`` exceed the memory available now."""
    available = available_memory()
    if available is not None and needed > available:
        raise MemoryBudgetError(f"{what} needs {human_bytes(needed)} of memory and this machine has"
                                f" {human_bytes(available)} available; {fix}")
