"""``training.launch preflight`` and ``submit``: check the run, write its job files, sbatch them.

``submit`` runs the preflight (every problem at once, exit 2), then writes a submission folder
``RUN_DIR/jobs/<UTC time>/`` holding the resolved run config (``run_config.yaml``, overrides applied) and a
copy of ``finetune_starcoderbase.sh`` (a queued job is not changed by later edits), prints the exact
``sbatch`` command (from the ``cluster:`` section), submits it unless ``--dry-run`` and prints the job id and
the log file. ``RUN_DIR`` is ``cluster.run_dir`` or ``<training.save>/slurm``; logs go to
``RUN_DIR/logs/<job name>-<job id>.out``. The command is an argv list, run without a shell. Each job's id is
kept in its submission folder (``job_id``); a submission is refused while an earlier job of the same run
is still pending or running (two jobs would resume from the same checkpoint and write over each other).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from guardrails.atomic_files import write_bytes_atomic, write_text_atomic
from runconfig.cluster_section import ClusterConfig
from runconfig.run_config import RunConfig, load_run_config
from guardrails.output_paths import check_run_folder, own_run_folder
from training.local.checkpointing import ADOPT_COMMAND, JOB_FOLDER_NAME, TRAINING_RUN

JOB_SCRIPT = Path(__file__).resolve().parents[1] / "finetune_starcoderbase.sh"  # training/, beside the entry points
CONFIG_NAME = "run_config.yaml"
JOB_ID_NAME = "job_id"


def run_dir(run: RunConfig) -> Path:
    return Path(run.cluster.run_dir or Path(run.training.save) / JOB_FOLDER_NAME)


def sbatch_argv(cluster: ClusterConfig, script: Path, job_dir: Path, log_dir: Path, workdir: Path) -> list[str]:
    """The ``sbatch`` command for the ``cluster:`` section (pure); the script's own arguments come last."""
    argv = ["sbatch", "--parsable", f"--job-name={cluster.job_name}", f"--nodes={cluster.nodes}",
            "--ntasks-per-node=1", f"--time={cluster.time}", f"--output={log_dir / '%x-%j.out'}",
            f"--chdir={workdir}"]
    if cluster.request_gpus:
        argv.append(f"--gpus-per-node={cluster.gpus_per_node}")
    for flag, value in (("partition", cluster.partition), ("account", cluster.account), ("qos", cluster.qos),
                        ("cpus-per-task", cluster.cpus_per_task or ""), ("mem", cluster.mem),
                        ("constraint", cluster.constraint)):
        if value != "":
            argv.append(f"--{flag}={value}")
    if cluster.exclusive:
        argv.append("--exclusive")
    argv += list(cluster.sbatch_args)
    site_env = str(Path(cluster.site_env).resolve())
    return argv + [str(script), str(job_dir), site_env, str(cluster.gpus_per_node), str(cluster.rdzv_port)]


def resolved_config_text(run: RunConfig) -> str:
    """The run config with overrides applied, as YAML (tuples as lists) that ``load_run_config`` reads back."""
    plain = json.loads(json.dumps(dataclasses.asdict(run)))
    return "# written by python -m training.launch submit: the run config with its overrides applied\n" + \
        yaml.safe_dump(plain, sort_keys=False)


def write_job_files(run: RunConfig, stamp: str) -> Path:
    check_run_folder(run.training.save, TRAINING_RUN, "training.save", ADOPT_COMMAND)
    own_run_folder(run.training.save, TRAINING_RUN)  # its record: the run's own folder, as the engine makes it
    job_dir = run_dir(run) / "jobs" / stamp
    job_dir.mkdir(parents=True, exist_ok=False)
    (run_dir(run) / "logs").mkdir(parents=True, exist_ok=True)
    write_text_atomic(job_dir / CONFIG_NAME, resolved_config_text(run))
    script = write_bytes_atomic(job_dir / JOB_SCRIPT.name, JOB_SCRIPT.read_bytes())
    script.chmod(0o755)
    return job_dir


def active_jobs(run: RunConfig) -> list[str]:
    """``ID (STATE)`` of this run's earlier jobs that SLURM still has pending or running."""
    ids = sorted(p.read_text(encoding="utf-8").strip() for p in (run_dir(run) / "jobs").glob(f"*/{JOB_ID_NAME}"))
    if not ids:
        return []
    done = subprocess.run(["squeue", "-h", "-j", ",".join(ids), "-o", "%i %T"], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:  # squeue refuses a list of only forgotten job ids: none is active
        return []
    return [f"{job} ({state})" for job, state in (line.split() for line in done.stdout.splitlines() if line.strip())]


def _print_findings(findings: list[Any]) -> bool:
    for finding in findings:
        print(finding, file=sys.stderr)
    errors = sum(f.error for f in findings)
    if errors:
        print(f"preflight: {errors} problem(s); nothing was queued", file=sys.stderr)
    return errors == 0


def _preflight_passed(args: argparse.Namespace) -> RunConfig | None:
    """The run config of ``args`` when its preflight finds no error (its findings printed either way)."""
    from training.cluster.preflight import run_preflight

    run = load_run_config(args.config, args.overrides)
    return run if _print_findings(run_preflight(run, os.environ)) else None


def command_preflight(args: argparse.Namespace) -> int:
    if _preflight_passed(args) is None:
        return 2
    print(f"preflight: OK ({args.config})")
    return 0


def command_submit(args: argparse.Namespace) -> int:
    run = _preflight_passed(args)
    if run is None:
        return 2
    if not Path(run.cluster.site_env).is_file():
        print(f"error: {run.cluster.site_env}: the site env file is missing; copy training/site.env.example"
              " there and edit it (or set cluster.site_env)", file=sys.stderr)
        return 2
    running = [] if args.dry_run else active_jobs(run)
    if running:
        print(f"error: {', '.join(running)} of this run is still queued or running (save folder"
              f" {run.training.save}); wait for it, or scancel it, before submitting again", file=sys.stderr)
        return 2
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + f"-{os.getpid()}"
    job_dir = write_job_files(run, stamp)
    logs = run_dir(run).resolve() / "logs"
    argv = sbatch_argv(run.cluster, job_dir.resolve() / JOB_SCRIPT.name, job_dir.resolve(), logs, Path.cwd())
    print(f"job files: {job_dir}")
    print(shlex.join(argv))
    if args.dry_run:
        return 0
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"error: sbatch failed ({done.returncode}): {done.stderr.strip()}", file=sys.stderr)
        return 2
    job_id = done.stdout.strip().split(";")[0]
    write_text_atomic(job_dir / JOB_ID_NAME, job_id + "\n")
    print(f"submitted job {job_id}; log: {logs / f'{run.cluster.job_name}-{job_id}.out'}")
    return 0
