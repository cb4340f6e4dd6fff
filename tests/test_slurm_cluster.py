"""The test SLURM itself: jobs and array jobs run, two clusters coexist, every daemon is stopped by PID."""
import os

from tests.slurm_cluster import SlurmCluster


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_two_private_clusters_run_jobs_and_arrays_then_stop():
    with SlurmCluster.started() as first, SlurmCluster.started() as second:
        assert first.conf != second.conf and first.munge_socket != second.munge_socket
        assert first.conf.read_text() != second.conf.read_text()  # other ports, folders, cluster name
        out = second.root / "out.txt"
        job = second.sbatch(["--wrap", "echo hello from slurm", f"--output={out}"])
        array = first.sbatch(["--array=0-2", "--wrap", "true", f"--output={first.root / 'a-%a.out'}"])
        assert second.wait(job) == "COMPLETED" and out.read_text() == "hello from slurm\n"
        assert first.wait_all(array) == {f"{array}_{i}": "COMPLETED" for i in range(3)}
        assert job == array  # each controller numbers its own jobs: nothing is shared
        pids = [p.pid for c in (first, second) for p in c.processes.values()]
        assert len(pids) == 6 and all(_alive(pid) for pid in pids)
    assert not [pid for pid in pids if _alive(pid)]
    assert not first.root.exists() and not second.root.exists()
