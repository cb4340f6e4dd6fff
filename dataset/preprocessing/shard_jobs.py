"""The SLURM commands of a sharded preprocess, as pure functions of the settings (used by ``dataset.launch``).

Every command is an argv list, run without a shell. The job bodies go to ``sbatch --wrap`` as one command
line made with ``shlex.join`` (after ``. SITE_ENV &&`` when the ``cluster.site_env`` file exists), so paths
with spaces or shell metacharacters stay inert: nothing in them is ever run. The CPU settings are the
``preprocess_*``/``merge_*`` keys of ``cluster:`` (``runconfig.cluster_section``). The shard job is one
array job, one task per shard (``--array=0-(N-1)``, or only the shards still to make on a resubmission,
``%K`` to run at most K at once); each task runs ``python -m dataset.preprocess --config RUN.yaml ...
--num-shards N``, which takes its shard index from ``SLURM_ARRAY_TASK_ID``. The merge
job runs ``python -m dataset.merge_shards`` once every shard task it waits for has ended well
(``--dependency=afterok:...``).
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass

from runconfig.cluster_section import ClusterConfig

JOB_NAMES = ("codeft-preprocess", "codeft-merge-shards")
ACTIVE_STATES = ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "RESIZING", "SUSPENDED")


@dataclass(frozen=True)
class ShardJob:
    """What one submission needs: the run config, its overrides, the output prefix and the shard count."""

    config: str  # absolute path of the run config
    overrides: tuple[str, ...]
    output_prefix: str
    num_shards: int
    python: str  # interpreter on the nodes
    workdir: str  # the jobs run here (relative paths in the config are relative to it)
    log_dir: str
    site_env: str = ""  # sourced first when not empty (modules, the virtualenv...)


def array_spec(indices: list[int], max_parallel: int = 0) -> str:
    """``--array`` value: ``0-6`` or ``1,4-5`` (consecutive runs folded), ``%K`` when throttled."""
    runs: list[list[int]] = []
    for i in sorted(set(indices)):
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    spec = ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs)
    return f"{spec}%{max_parallel}" if max_parallel else spec


def _common(settings: ClusterConfig, job: ShardJob) -> list[str]:
    argv = ["--parsable", f"--chdir={job.workdir}"]
    for flag, value in (("partition", settings.partition), ("account", settings.account), ("qos", settings.qos)):
        if value:
            argv.append(f"--{flag}={value}")
    return argv


def job_body(command: list[str], site_env: str) -> str:
    """The ``--wrap`` command line: ``exec`` of ``command``, after sourcing the site env if there is one."""
    run = shlex.join(["exec", *command])
    return f". {shlex.quote(site_env)} && {run}" if site_env else run


def preprocess_command(job: ShardJob) -> list[str]:
    """What each array task runs (its shard index comes from ``SLURM_ARRAY_TASK_ID``)."""
    return [job.python, "-m", "dataset.preprocess", "--config", job.config, *job.overrides,
            "--num-shards", str(job.num_shards)]


def merge_command(job: ShardJob) -> list[str]:
    return [job.python, "-m", "dataset.merge_shards", "--output-prefix", job.output_prefix,
            "--num-shards", str(job.num_shards)]


def sbatch_array_argv(settings: ClusterConfig, job: ShardJob, indices: list[int]) -> list[str]:
    """``sbatch`` for the shard tasks ``indices`` as one array job."""
    return ["sbatch", *_common(settings, job), f"--job-name={JOB_NAMES[0]}",
            f"--array={array_spec(indices, settings.preprocess_max_parallel)}", "--nodes=1", "--ntasks=1",
            f"--cpus-per-task={settings.preprocess_cpus_per_task}", f"--mem={settings.preprocess_mem}",
            f"--time={settings.preprocess_time}", f"--output={job.log_dir}/shard-%a-job-%A.log",
            f"--wrap={job_body(preprocess_command(job), job.site_env)}"]


def sbatch_merge_argv(settings: ClusterConfig, job: ShardJob, after: list[str]) -> list[str]:
    """``sbatch`` for the merge, after the jobs or array tasks ``after`` (``123``, ``120_4``) all succeed."""
    dependency = [f"--dependency=afterok:{':'.join(after)}", "--kill-on-invalid-dep=yes"] if after else []
    return ["sbatch", *_common(settings, job), f"--job-name={JOB_NAMES[1]}", *dependency,
            "--nodes=1", "--ntasks=1", "--cpus-per-task=1", f"--mem={settings.merge_mem}",
            f"--time={settings.merge_time}", f"--output={job.log_dir}/merge-job-%j.log",
            f"--wrap={job_body(merge_command(job), job.site_env)}"]


def parse_job_id(stdout: str) -> str:
    """The job id ``sbatch --parsable`` prints (``123`` or ``123;cluster``)."""
    first = stdout.strip().splitlines()[0] if stdout.strip() else ""
    job_id = first.split(";")[0]
    if not job_id.isdigit():
        raise ValueError(f"sbatch printed {stdout.strip()!r}, not a job id")
    return job_id


def squeue_argv() -> list[str]:
    """``squeue`` listing this launcher's jobs, each array task on its own line as ``JOBID_TASK|STATE``.

    By name, not by id: ``squeue --jobs`` fails outright once one of the ids has left the queue.
    """
    return ["squeue", "--noheader", "--array", f"--name={','.join(JOB_NAMES)}", "--format=%i|%T"]


def parse_squeue(stdout: str) -> dict[str, str]:
    """``{"123_4": "RUNNING", "124": "PENDING"}`` from :func:`squeue_argv`'s output."""
    states = {}
    for line in stdout.splitlines():
        if "|" in line:
            job, state = line.strip().split("|", 1)
            states[job] = state.strip()
    return states


def shards_in_flight(states: dict[str, str], array_jobs: list[str]) -> dict[int, str]:
    """Shard index -> ``JOBID_INDEX`` of every task of ``array_jobs`` still queued or running."""
    flying = {}
    for job, state in states.items():
        base, _, task = job.partition("_")
        if base in array_jobs and task.isdigit() and state in ACTIVE_STATES:
            flying[int(task)] = job
    return flying
