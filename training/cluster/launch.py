"""The cluster path: build the fork's argv, check a run before it is queued, submit it to SLURM.

The code of ``python -m training.launch``; how to run it and what it does: the docstring of its entry point
``training/launch.py``.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

from conversion.checkpoint_format import CheckpointFormatError
from guardrails.file_set import write_json_with_record
from guardrails.output_paths import claim_file
from guardrails.output_records import OutputKind
from dataset.splitting.split_files import SplitFileError
from runconfig import ConfigError
from runconfig.run_config import load_run_config


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training.launch", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (("argv", "print the job's script and argument list"),
                       ("preflight", "check the run before it is queued"),
                       ("submit", "write the job files and sbatch them"),
                       ("status", "the run's jobs, its last logged iteration and what a resubmission would do"),
                       ("adopt", "once: make a save folder written before records existed this run's own")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--config", required=True, help="the run config YAML")
        sub.add_argument("overrides", nargs="*", help="section.key=value overrides")
    commands.choices["argv"].add_argument("--json", action="store_true", help="one JSON object on stdout")
    commands.choices["argv"].add_argument("--write", type=Path, help="also save the JSON object to this file")
    commands.choices["submit"].add_argument("--dry-run", action="store_true", help="write and print, do not submit")
    exec_ = commands.add_parser("exec", help="inside the job: replace this process with the argv a file holds")
    exec_.add_argument("file", type=Path)
    return parser


ARGV_FILE = OutputKind("a job's argv file", "training.launch argv")


def command_argv(args: argparse.Namespace) -> int:
    from training.cluster.fork_job import plan_job

    if args.write is not None:
        claim_file(args.write, ARGV_FILE, "--write", inputs=[args.config])
    run = load_run_config(args.config, args.overrides)
    job = plan_job(run, args.config, args.overrides)
    print(job.decision, file=sys.stderr)
    if args.write is not None:
        write_json_with_record(args.write, ARGV_FILE, job.to_json(), indent=1)
    if args.json:
        print(json.dumps(job.to_json()))
    elif job.script.endswith(".py") and "MEGATRON_DIR" not in os.environ:  # left for the shell to fill in
        print(f'{shlex.quote(sys.executable)} "$MEGATRON_DIR"/{job.script} {shlex.join(job.argv)}')
    else:
        print(shlex.join(_command_line(job.script, list(job.argv))))
    return 0


# the environment every fork worker gets: the multi-query-attention branch's validate_args refuses to start
# without one CUDA connection when sequence parallelism or its default async tensor-parallel all-reduce is on
# (overlapping communication with compute relies on kernels running in the order they were queued)
FORK_ENV = {"CUDA_DEVICE_MAX_CONNECTIONS": "1"}


def _command_line(script: str, argv: list[str]) -> list[str]:
    """The process a worker becomes: the fork's script under MEGATRON_DIR, or the local engine's module."""
    if script.endswith(".py"):
        return [sys.executable, str(Path(os.environ.get("MEGATRON_DIR", "")) / script), *argv]
    return [sys.executable, "-m", script, *argv]


def command_adopt(args: argparse.Namespace) -> int:
    from conversion.checkpoint_format import TRACKER_NAME
    from guardrails.output_paths import adopt_run_folder
    from training.local.checkpointing import TRAINING_RUN, foreign_entries

    save = Path(load_run_config(args.config, args.overrides).training.save)
    tracker = save / TRACKER_NAME
    if not tracker.is_file() or not tracker.read_text(encoding="utf-8").strip().isdigit():
        raise ValueError(f"training.save {save}: no {TRACKER_NAME} naming an iteration, so no run's checkpoints to"
                         " adopt (a new run needs no adoption; a release checkpoint is a training.load)")
    adopt_run_folder(save, TRAINING_RUN, "training.save", foreign_entries(save))
    print(f"adopted {save}: its {TRAINING_RUN.record} now proves it this run's save folder; submit again to resume")
    return 0


def command_exec(args: argparse.Namespace) -> int:
    job = json.loads(args.file.read_text(encoding="utf-8"))
    if not isinstance(job, dict) or not isinstance(job.get("script"), str) or not isinstance(job.get("argv"), list):
        raise ValueError("not a job's argv file (a JSON object with script and an argv list, as training.launch"
                         " writes it); submit the job again")
    line = _command_line(job["script"], [str(a) for a in job["argv"]])
    if job["script"].endswith(".py") and not (os.environ.get("MEGATRON_DIR") and Path(line[1]).is_file()):
        raise FileNotFoundError(f"{line[1]}: not found; set MEGATRON_DIR (site env file) to the fork's checkout")
    env = {**os.environ, **FORK_ENV} if job["script"].endswith(".py") else dict(os.environ)
    sys.stdout.flush()
    os.execve(line[0], line, env)  # no shell: the argv's values are never interpreted
    return 0  # not reached


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "exec":
        try:
            return command_exec(args)
        except (OSError, ValueError, KeyError) as exc:
            print(f"error: {args.file}: {exc}", file=sys.stderr)
            return 2
    from training.local.checkpointing import ResumeError

    handlers = {"argv": command_argv, "adopt": command_adopt}
    if args.command in ("preflight", "submit"):
        from training.cluster.slurm_submit import command_preflight, command_submit

        handlers.update(preflight=command_preflight, submit=command_submit)
    if args.command == "status":
        from training.cluster.run_status import command_status

        handlers["status"] = command_status
    try:
        return handlers[args.command](args)
    except (ConfigError, ResumeError, CheckpointFormatError, SplitFileError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
