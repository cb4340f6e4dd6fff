"""``python -m training.launch status --config RUN.yaml``: a cluster run's jobs, its progress, its next step.

Prints, for the run whose save folder the config names:

* every job ``training.launch submit`` queued for it (``RUN_DIR/jobs/*/job_id``), oldest first: its SLURM id, state
  (pending, running, completed, failed, cancelled, timeout...: ``scontrol show job``, else ``sacct`` once SLURM
  has let go of it, else "ended") with the exit code, and its log file;
* the last logged iteration: loss, throughput, time per iteration and the ETA to ``training.train_iters``
  (the fork's ``iteration N/ M | ...`` lines in the newest job log; the local engine's ``metrics.jsonl``);
* the latest checkpoint (the tracker of ``training.save``);
* what a resubmission would do: start from ``training.load``, resume from iteration N, extend the run, or
  nothing (the run is finished), with the schedule notes of ``training.resume.schedule_resume``, or why it would be
  refused (``training.resume.run_identity``).

Every SLURM command is an argv list from a pure function, run without a shell.
"""
from __future__ import annotations

import json
import re
import sys
from argparse import Namespace
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from conversion.checkpoint_format import TRACKER_NAME, tag_dir_name
from runconfig.run_config import RunConfig, load_run_config
from training.cluster.fork_probe import command_stdout
from training.cluster.slurm_submit import JOB_ID_NAME, run_dir

# the fork's training_log line (megatron/training.py): ' iteration        3/       8 | consumed samples: ...'
FORK_ITERATION = re.compile(r"iteration\s+(\d+)/\s*(\d+) \|.*?elapsed time per iteration \(ms\): ([\d.]+) \|"
                            r".*?lm loss: ([\d.E+-]+) \|")


@dataclass(frozen=True)
class Progress:
    iteration: int
    loss: float
    seconds_per_iteration: float
    source: Path


def scontrol_argv(job_id: str) -> list[str]:
    return ["scontrol", "show", "job", "-o", job_id]


def sacct_argv(job_id: str) -> list[str]:
    return ["sacct", "--noheader", "--parsable2", "--allocations", f"--jobs={job_id}", "--format=State,ExitCode"]


def parse_scontrol(stdout: str) -> tuple[str, str] | None:
    """(state, exit code) from ``scontrol show job -o``'s line, or None when SLURM does not know the job."""
    for line in stdout.splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        if "JobState" in fields:
            return fields["JobState"], fields.get("ExitCode", "")
    return None


def parse_sacct(stdout: str) -> tuple[str, str] | None:
    line = next((l for l in stdout.splitlines() if l.strip()), "")
    parts = line.split("|")
    return (parts[0].split()[0], parts[1] if len(parts) > 1 else "") if parts[0] else None


def job_state(job_id: str) -> str:
    """``RUNNING``, ``COMPLETED (exit 0:0)``..., or what is known when SLURM has forgotten the job."""
    for argv, parse in ((scontrol_argv(job_id), parse_scontrol), (sacct_argv(job_id), parse_sacct)):
        found = parse(command_stdout(argv) or "")
        if found:
            state, code = found
            return f"{state} (exit {code})" if code and state not in ("PENDING", "RUNNING") else state
    return "ended (SLURM no longer knows it; its log says how)"


def submitted_jobs(run: RunConfig) -> list[tuple[str, Path]]:
    """(job id, submission folder) of every job submitted for this run, oldest first."""
    jobs = []
    for folder in sorted((run_dir(run) / "jobs").glob("*")):
        if (folder / JOB_ID_NAME).is_file():
            jobs.append(((folder / JOB_ID_NAME).read_text(encoding="utf-8").strip(), folder))
    return jobs


def log_file(run: RunConfig, job_id: str) -> Path | None:
    found = sorted((run_dir(run) / "logs").glob(f"*-{job_id}.out"))
    return found[0] if found else None


def fork_progress(log: Path) -> Progress | None:
    """The last ``iteration N/ M`` line of a fork log."""
    last = None
    with open(log, encoding="utf-8", errors="replace") as f:
        for line in f:
            match = FORK_ITERATION.search(line)
            if match:
                last = match
    if last is None:
        return None
    return Progress(int(last.group(1)), float(last.group(4)), float(last.group(3)) / 1000.0, log)


def engine_progress(save: Path) -> Progress | None:
    """The last train record of the local engine's ``metrics.jsonl``."""
    path = save / "metrics.jsonl"
    if not path.is_file():
        return None
    last: dict[str, Any] | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a kill
        if record.get("kind") == "train":
            last = record
    if last is None:
        return None
    return Progress(int(last["iteration"]), float(last["loss"]), float(last.get("iteration_s") or 0.0), path)


def progress_line(progress: Progress, cfg: Any) -> str:
    per = progress.seconds_per_iteration
    tokens = cfg.global_batch_size * cfg.seq_length / per if per else 0.0
    left = max(cfg.train_iters - progress.iteration, 0)
    eta = str(timedelta(seconds=round(left * per))) if per else "unknown"
    return (f"last logged: iteration {progress.iteration} of {cfg.train_iters}, loss {progress.loss:.4f},"
            f" {tokens:,.0f} tokens/s ({per:.3f} s/iteration), ETA {eta} for {left} iteration(s) ({progress.source})")


def resubmission(run: RunConfig, tag: str) -> list[str]:
    """What ``submit`` with this config would do now, in words (the job's own rules and schedule notes).

    Read-only: it does not claim the save folder (``checkpointing.plan_start`` would, and would clear leftovers that,
    seen from this host, belong to no live process, while a job on another node may be writing them)."""
    from training.resume.run_identity import check_resume_identity
    from training.resume.schedule_resume import resume_schedule

    cfg = run.training
    if not tag:
        return [f"a resubmission would start: weights from {cfg.load}, nothing in {cfg.save} to resume"]
    if not tag.isdigit():
        return [f"a resubmission would be refused: {Path(cfg.save) / TRACKER_NAME} says {tag!r}, not an iteration"]
    try:
        args, scheduler, consumed = recorded_progress(Path(cfg.save), tag)
        check_resume_identity(args, cfg)
        decision = resume_schedule(cfg, scheduler, consumed)
    except ValueError as exc:  # ResumeError, CheckpointFormatError: what submit would refuse with
        return [f"a resubmission would be refused: {exc}"]
    lines = [f"a resubmission would resume from iteration {consumed // cfg.global_batch_size}"]
    return lines + [f"  {line}" for line in decision.lines()]


def recorded_progress(save: Path, tag: str) -> tuple[dict[str, Any], Any, int]:
    """(recorded args, scheduler state, consumed samples) of the save folder's latest checkpoint, in either
    layout: the fork's (``mp_rank_XX``) or the local engine's Hugging Face one for other model families
    (``training.local.hf_family.checkpoint``, ``train_state.pt``), read as the job will read it."""
    from training.local.hf_family.checkpoint import is_hf_family_checkpoint, read_train_state
    from training.resume.recorded_args import read_recorded_checkpoint

    folder = save / tag_dir_name(tag)
    if is_hf_family_checkpoint(folder):
        state = read_train_state(folder, meta=True)  # no tensor read: the optimizer state may be large
        return state.get("args") or {}, state.get("opt_param_scheduler"), int(state.get("consumed_train_samples") or 0)
    recorded = read_recorded_checkpoint(str(save))
    return recorded.args, recorded.scheduler, int(recorded.args.get("consumed_train_samples") or 0)


def status_lines(run: RunConfig) -> list[str]:
    cfg = run.training
    lines = [f"run: {cfg.save} (engine {cfg.engine}; jobs and logs in {run_dir(run)})"]
    jobs = submitted_jobs(run)
    if not jobs:
        lines.append("jobs: none submitted (python -m training.launch submit --config ...)")
    logs = [log_file(run, job_id) for job_id, _ in jobs]
    for (job_id, folder), log in zip(jobs, logs):
        lines.append(f"job {job_id} ({folder.name}): {job_state(job_id)}; log {log if log else '(none yet)'}")
    progress = engine_progress(Path(cfg.save)) if cfg.engine == "local" else \
        next((p for p in (fork_progress(log) for log in reversed(logs) if log) if p), None)
    lines.append(progress_line(progress, cfg) if progress else "last logged: no iteration yet")
    tracker = Path(cfg.save) / TRACKER_NAME
    tag = tracker.read_text(encoding="utf-8").strip() if tracker.is_file() else ""
    lines.append(f"latest checkpoint: {Path(cfg.save) / tag_dir_name(tag)} (iteration {tag})" if tag.isdigit()
                 else "latest checkpoint: none")
    return lines + resubmission(run, tag)


def command_status(args: Namespace) -> int:
    run = load_run_config(args.config, args.overrides)
    print("\n".join(status_lines(run)), file=sys.stdout)
    return 0
