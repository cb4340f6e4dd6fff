"""A real one-node SLURM for tests: munged, slurmctld and slurmd on loopback, private to one test session.

Everything lives in a fresh folder (``tempfile.mkdtemp``, mode 0755 as munged requires of its socket's
folders): its own munge key and socket, ``slurm.conf``, state, spool, PID and log files, and TCP ports
picked free at start. Two test sessions on one machine therefore never share a daemon, a port or a file.
Every daemon runs in the foreground as a child of the test process and is stopped by its own PID (SIGTERM,
then SIGKILL); nothing is stopped by name. Client commands get ``SLURM_CONF`` through ``cluster.env``.

API (also for other test modules, e.g. array jobs)::

    from tests.slurm_cluster import slurm_cluster      # the pytest fixture (module scope), or:
    with SlurmCluster.started(cpus=2) as cluster:      # skips the test if the packages are missing
        job = cluster.sbatch(["--wrap", "echo hi", "--output", str(cluster.root / "out.txt")])
        state = cluster.wait(job)                      # "COMPLETED", "FAILED", "CANCELLED", ...
        array = cluster.sbatch(["--array=0-3", "--wrap", "true"])
        cluster.wait_all(array)                        # {"7_0": "COMPLETED", ..., "7_3": "COMPLETED"}
        cluster.job_states(array)                      # the same, without waiting
        cluster.run(["scancel", job])                  # any client command, with the cluster's env
        cluster.env                                    # os.environ + SLURM_CONF (for subprocesses)

``ensure_slurm_installed()`` installs Debian's ``slurm-wlm`` and ``munge`` when missing (as root, quietly)
and returns None, or the reason it could not; the fixture skips with that reason.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

DAEMONS = ("munged", "slurmctld", "slurmd")
FINISHED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY", "BOOT_FAIL",
            "DEADLINE"}


def _missing_commands() -> list[str]:
    return [c for c in (*DAEMONS, "sbatch", "scontrol", "munge") if shutil.which(c, path=_sbin_path()) is None]


def _sbin_path() -> str:
    return os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin", "/sbin"])


def ensure_slurm_installed() -> str | None:
    """None when SLURM and munge are usable (installing them with apt-get if needed), else why not."""
    if not _missing_commands():
        return None
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return f"SLURM/munge not installed ({', '.join(_missing_commands())}) and apt-get as root is not available"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (["apt-get", "install", "-y", "-qq", "slurm-wlm", "munge"],
                 ["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "slurm-wlm", "munge"]):
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if argv[1] == "install" and done.returncode == 0 and not _missing_commands():
            return None
    return f"apt-get install slurm-wlm munge failed: {done.stderr.strip()[-300:]}"


def _machine_memory_mb() -> int:
    with open("/proc/meminfo", encoding="ascii") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return 1024


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports that were free on loopback a moment ago (the OS picks them)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


SLURM_CONF = """\
ClusterName={cluster}
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={munge_socket}
CredType=cred/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/pgid
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
ReturnToService=2
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
MinJobAge=3600
KillWait=5
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName={node} NodeAddr=127.0.0.1 NodeHostname={hostname} CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName={partition} Nodes={node} Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
"""


class SlurmCluster:
    """One private SLURM (controller + one node) in ``root``; see the module docstring."""

    partition = "debug"

    def __init__(self, root: Path, cpus: int = 2, memory_mb: int = 4096) -> None:
        self.root = root
        # slurmd drains a node that claims more CPUs or memory than the machine has: never claim more
        self.cpus = max(1, min(cpus, os.cpu_count() or 1))
        self.memory_mb = max(1, min(memory_mb, _machine_memory_mb() - 256))
        self.node = "localhost"
        self.conf = root / "slurm.conf"
        self.munge_socket = root / "munge" / "munge.socket"
        self.processes: dict[str, subprocess.Popen] = {}
        self.env = dict(os.environ, SLURM_CONF=str(self.conf), PATH=_sbin_path())

    @classmethod
    @contextlib.contextmanager
    def started(cls, cpus: int = 2, memory_mb: int = 4096) -> Iterator["SlurmCluster"]:
        reason = ensure_slurm_installed()
        if reason:
            pytest.skip(reason)
        # under /tmp, not $TMPDIR: munged refuses a socket below a folder that others cannot enter
        root = Path(tempfile.mkdtemp(prefix="codeft-slurm-", dir="/tmp" if os.path.isdir("/tmp") else None))
        root.chmod(0o755)  # munged wants execute permission for all on its socket's folders
        cluster = cls(root, cpus, memory_mb)
        try:
            cluster.start()
            yield cluster
        finally:
            cluster.stop()
            shutil.rmtree(root, ignore_errors=True)

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.root / f"{name}.stdout", "wb")
        self.processes[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                                start_new_session=True)
        log.close()

    def start(self, timeout: float = 60.0) -> None:
        for sub in ("munge", "state", "spool"):
            (self.root / sub).mkdir(mode=0o755, exist_ok=True)
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        ctld_port, slurmd_port = free_ports(2)
        self.conf.write_text(SLURM_CONF.format(
            cluster=f"codeft{os.getpid()}", node=self.node, hostname=socket.gethostname(), ctld_port=ctld_port,
            slurmd_port=slurmd_port, munge_socket=self.munge_socket, root=self.root, cpus=self.cpus,
            memory_mb=self.memory_mb, partition=self.partition))
        munge = self.root / "munge"
        self._spawn("munged", ["munged", "--foreground", "--force", f"--socket={self.munge_socket}",
                               f"--key-file={key}", f"--pid-file={munge / 'munged.pid'}",
                               f"--log-file={munge / 'munged.log'}", f"--seed-file={munge / 'munged.seed'}"])
        self._wait_for(lambda: self.munge_socket.exists(), timeout, "munged did not create its socket")
        self._spawn("slurmctld", ["slurmctld", "-D", "-i", "-f", str(self.conf)])
        self._wait_for(lambda: self.run(["scontrol", "ping"], check=False).returncode == 0, timeout,
                       "slurmctld did not answer scontrol ping")
        self._spawn("slurmd", ["slurmd", "-D", "-N", self.node, "-f", str(self.conf)])
        self._wait_for(self._node_idle, timeout, "slurmd did not register the node as idle")

    def _node_idle(self) -> bool:
        done = self.run(["sinfo", "-h", "-n", self.node, "-o", "%T"], check=False)
        return done.returncode == 0 and done.stdout.strip().rstrip("*") in ("idle", "mixed", "allocated")

    def _wait_for(self, ready, timeout: float, message: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = [n for n, p in self.processes.items() if p.poll() is not None]
            if dead:
                raise RuntimeError(f"{dead[0]} exited: {self.logs(dead[0])}")
            if ready():
                return
            time.sleep(0.2)
        raise RuntimeError(f"{message} within {timeout:.0f} s:\n{self.logs()}")

    def logs(self, name: str | None = None) -> str:
        """The tail of each daemon's log (for failure messages)."""
        files = sorted(self.root.glob("*.log")) + sorted(self.root.glob("*.stdout")) + [self.root / "munge" / "munged.log"]
        chosen = [f for f in files if f.exists() and (name is None or f.name.startswith(name))]
        return "\n".join(f"--- {f.name}\n" + "\n".join(f.read_text(errors="replace").splitlines()[-15:]) for f in chosen)

    def run(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess:
        """A SLURM client command (sbatch, squeue, scancel, scontrol...) against this cluster."""
        done = subprocess.run(argv, env=self.env, capture_output=True, text=True, check=False, timeout=60)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
        return done

    def sbatch(self, args: list[str]) -> str:
        """Submit; returns the job id."""
        return self.run(["sbatch", "--parsable", *args]).stdout.strip().split(";")[0]

    def job_states(self, job_id: str) -> dict[str, str]:
        """The state of every job ``job_id`` names: one entry, or one per array task (``"12_3": "RUNNING"``).

        Pending array tasks not yet split off show as one entry such as ``"12_[4-9]"``.
        """
        done = self.run(["scontrol", "show", "job", "-o", job_id], check=False)
        states = {}
        for line in done.stdout.splitlines():
            fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
            if "JobState" not in fields:
                continue
            key = (f"{fields['ArrayJobId']}_{fields['ArrayTaskId']}" if "ArrayTaskId" in fields
                   else fields.get("JobId", job_id))
            states[key] = fields["JobState"]
        return states

    def job_state(self, job_id: str) -> str:
        """The state of one job (or array task ``"12_3"``); ``UNKNOWN`` once SLURM has forgotten it."""
        states = self.job_states(job_id)
        return next(iter(states.values())) if len(states) == 1 else ("UNKNOWN" if not states else "MIXED")

    def wait_all(self, job_id: str, timeout: float = 300.0) -> dict[str, str]:
        """Poll until every job (or array task) ``job_id`` names has finished; returns their final states."""
        deadline = time.monotonic() + timeout
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            states = self.job_states(job_id)
            if states and all(s in FINISHED for s in states.values()):
                return states
            time.sleep(0.5)
        raise TimeoutError(f"job {job_id} not finished after {timeout:.0f} s: {states}\n{self.logs()}")

    def wait(self, job_id: str, timeout: float = 300.0) -> str:
        """Poll until a single job has finished; returns its final state (``COMPLETED``, ``CANCELLED`` ...)."""
        states = self.wait_all(job_id, timeout)
        if len(states) != 1:
            raise ValueError(f"{job_id} names {len(states)} jobs ({states}); use wait_all for array jobs")
        return next(iter(states.values()))

    def stop(self) -> None:
        """Cancel this cluster's jobs, then stop the daemons it started by PID (node first; SIGKILL after 15 s)."""
        ctld = self.processes.get("slurmctld")
        if ctld is not None and ctld.poll() is None:
            self.run(["scancel", f"--partition={self.partition}"], check=False)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and self.run(["squeue", "-h"], check=False).stdout.strip():
                time.sleep(0.5)
        for name in reversed(DAEMONS):
            process = self.processes.pop(name, None)
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)


@pytest.fixture(scope="module")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """A running one-node SLURM for the tests of one module (2 CPUs on the node)."""
    with SlurmCluster.started() as cluster:
        yield cluster


def submit_in_process(config: Path, *overrides: str) -> tuple[str, Path]:
    """``python -m training.launch submit --config CONFIG`` in this process (torch is imported already); returns
    the job id and its log file, as submit prints them. The cluster's ``SLURM_CONF`` must be in ``os.environ``."""
    import io

    from training.cluster.launch import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["submit", "--config", str(config), *overrides])
    assert rc == 0, err.getvalue()
    job, log = out.getvalue().split("submitted job ")[1].split("; log: ")
    return job, Path(log.strip())
