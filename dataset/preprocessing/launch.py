"""Run a sharded preprocess on SLURM: the shards as one array job, the merge as a job that waits for them.

The code of ``python -m dataset.launch``; how to run it and what it does: the docstring of its entry point
``dataset/launch.py``.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guardrails.file_set import write_json_with_record
from guardrails.output_paths import claim_file
from guardrails.output_records import OutputKind
from dataset.formats.input_files import expand_inputs
from dataset.formats.jsonl_records import InputFileError
from dataset.formats.preprocess_manifest import manifest_path, read_manifest
from dataset.formats.tokenizer_match import tokenizer_sha256
from dataset.preprocessing.shard_jobs import (
    ShardJob, parse_job_id, parse_squeue, sbatch_array_argv, sbatch_merge_argv, shards_in_flight, squeue_argv,
)
from dataset.preprocessing.shard_manifests import (
    ShardMergeError, edited_inputs, merged_run_facts, read_shard_manifest, run_facts, shard_manifest_path,
    shard_run_facts,
)
from dataset.preprocessing.shard_plan import ShardPlanError, ShardSpec, input_sizes, shards_folder
from dataset.preprocessing.shard_run import output_settings, shard_config
from runconfig import ConfigError, load_section
from runconfig.data_section import DataConfig
from runconfig.cluster_section import ClusterConfig

STATE_NAME = "launch.json"


class LaunchError(ValueError):
    """A run that cannot be submitted as configured; the message says what to fix."""


class SlurmError(RuntimeError):
    """A SLURM command that failed (its stderr is in the message)."""


@dataclass
class LaunchState:
    """What earlier submissions of this run queued (``PREFIX.shards/launch.json``)."""

    num_shards: int
    first_submitted: float = 0.0
    array_jobs: list[str] = field(default_factory=list)
    merge_jobs: list[str] = field(default_factory=list)


LAUNCH_STATE = OutputKind("the job ids of a sharded preprocess", "dataset.launch submit")


def state_path(prefix: str) -> Path:
    return shards_folder(prefix) / STATE_NAME


def read_state(prefix: str, num_shards: int) -> LaunchState:
    path = state_path(prefix)
    if not path.is_file():
        return LaunchState(num_shards)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LaunchError(f"{path}: cannot read the job ids of earlier submissions ({exc}); {_STATE_FIX}") from exc
    if not _state_shape_ok(raw):  # cut, a list, keys missing or of another type
        raise LaunchError(f"{path}: damaged (expected an object of num_shards, first_submitted and the lists"
                          f" array_jobs and merge_jobs of job ids); {_STATE_FIX}")
    if raw["num_shards"] != num_shards:  # jobs of another shard count are not this run's
        return LaunchState(num_shards)
    return LaunchState(**raw)


def _state_shape_ok(raw: Any) -> bool:
    if not isinstance(raw, dict) or set(raw) != {f.name for f in dataclasses.fields(LaunchState)}:
        return False
    jobs_ok = all(isinstance(raw[k], list) and all(isinstance(j, str) for j in raw[k])
                  for k in ("array_jobs", "merge_jobs"))
    return jobs_ok and isinstance(raw["num_shards"], int) and isinstance(raw["first_submitted"], (int, float))


_STATE_FIX = ("check with squeue that no job of this run is queued or running, then delete the file and submit"
              " again (finished shards are kept)")


def shard_facts(data: DataConfig, paths: list[str]) -> dict[str, Any]:
    """What a shard's manifest must say for it to count as this run's: settings, inputs (``paths``: the input
    files, language folders expanded), tokenizer."""
    facts = run_facts(output_settings(dataclasses.asdict(data)),
                      [{"path": p, "bytes": n} for p, n in zip(paths, input_sizes(paths))],
                      tokenizer_sha256(data.tokenizer))
    return json.loads(json.dumps(facts))  # tuples as lists, as in a manifest


def finished_shards(prefix: str, num_shards: int, facts: dict[str, Any] | None = None,
                    hashed: dict[tuple[str, int, int], str] | None = None
                    ) -> tuple[dict[int, dict[str, Any]], list[int], list[str]]:
    """(shard index -> manifest for every finished shard of this run, indices of shards made otherwise, the inputs
    edited in place since some shard read them).

    With ``facts`` (:func:`shard_facts`), a shard made with other settings, inputs or tokenizer is not
    finished: it is listed as stale, and a resubmission makes it again. So is a shard whose input bytes are no
    longer those it read (an edit in place keeps path and size: ``edited_inputs`` compares the pieces' hashes;
    ``hashed``: the pieces this command hashed already, shared with :func:`merged`).
    """
    done, stale, edited = {}, [], []
    for index in range(num_shards):
        path = shard_manifest_path(prefix, ShardSpec(index, num_shards))
        if not path.is_file():
            continue
        manifest = read_shard_manifest(path, index, num_shards)  # damaged: one line naming it
        changed = [] if facts is None else edited_inputs(manifest["shard"]["inputs"], manifest["shard"]["pieces"],
                                                           hashed)
        if facts is not None and (facts != shard_run_facts(manifest) or changed):
            stale.append(index)
            edited += [p for p in changed if p not in edited]
        else:
            done[index] = manifest
    return done, stale, edited


def stale_line(stale: list[int], edited: list[str], then: str) -> str:
    """Why shards are made again: ``then`` says by whom (this submit, or the next)."""
    why = (f"read {', '.join(edited)}, edited in place since (other bytes)" if edited
           else "were made with other settings, inputs or tokenizer")
    return f"shards {stale} {why}: {then}"


def merged(prefix: str, num_shards: int, facts: dict[str, Any],
           hashed: dict[tuple[str, int, int], str] | None = None) -> bool | None:
    """True when ``prefix`` holds the merge of this run's shards, None when it holds a merge made with other
    settings, inputs or tokenizer (the run config changed since: the shards are made again) or from input bytes
    edited in place since, else False."""
    path = manifest_path(prefix)
    if not path.is_file():
        return False
    try:
        m = read_manifest(path)
    except (OSError, ValueError) as exc:
        raise LaunchError(f"{path}: cannot read the merged manifest ({exc}); move it away to make the dataset"
                          " again") from exc
    if not isinstance(m, dict) or m.get("stage") != "merge_shards" or not isinstance(m.get("shards"), list) \
            or len(m["shards"]) != num_shards:
        return False
    if merged_run_facts(m) != facts or edited_inputs(m.get("inputs"), m.get("pieces"), hashed):
        return None  # another run's, or its inputs were edited in place since (same paths and sizes)
    return True


def progress_line(data: DataConfig, facts: dict[str, Any], done: dict[int, dict[str, Any]], in_flight: int,
                  state: LaunchState, now: float) -> str:
    """Shards done / in flight / to submit, input bytes done (of the input sizes in ``facts``), records and bytes
    per second."""
    n = data.num_shards
    total = sum(i["bytes"] for i in facts["inputs"])
    records = sum(m["records_in"] for m in done.values())
    nbytes = sum(sum(p["end"] - p["start"] for p in m["shard"]["pieces"]) for m in done.values())
    seconds = sum(m["timings_s"].get("total", 0.0) for m in done.values())
    line = (f"shards: {len(done)} of {n} done, {in_flight} queued or running, {n - len(done) - in_flight} to"
            f" submit; input: {nbytes / 1e6:.1f} of {total / 1e6:.1f} MB ({100 * nbytes / max(total, 1):.0f}%)")
    if seconds:
        line += f"; per shard task {records / seconds:.0f} records/s, {nbytes / seconds / 1e6:.2f} MB/s"
    if done and state.first_submitted:
        elapsed = max(now - state.first_submitted, 1e-9)
        line += f"; overall {records / elapsed:.0f} records/s, {nbytes / elapsed / 1e6:.2f} MB/s"
    return line


def _run(argv: list[str]) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise SlurmError(f"{argv[0]} not found: is SLURM installed on this machine?") from exc
    if result.returncode != 0:
        raise SlurmError(f"{shlex.join(argv[:2])} ... failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


def _queue(state: LaunchState) -> dict[str, str]:
    return parse_squeue(_run(squeue_argv())) if state.array_jobs or state.merge_jobs else {}


def _load(args: argparse.Namespace) -> tuple[DataConfig, ClusterConfig, ShardJob, list[str]]:
    """The run config's sections, the shard job, and the input files (language folders expanded, walked once)."""
    bad = [o for o in args.overrides if "=" not in o or "." not in o.split("=", 1)[0]]
    if bad:
        raise LaunchError(f"override {bad[0]!r} must be written section.key=value (e.g. data.num_shards=8)")
    data = load_section(args.config, "data", DataConfig, args.overrides)
    settings = load_section(args.config, "cluster", ClusterConfig, args.overrides)
    if not data.inputs or not data.tokenizer or not data.output_prefix:
        raise LaunchError(f"{args.config}: data: needs inputs, tokenizer and output_prefix")
    try:  # a folder of languages stands for its files
        paths = expand_inputs(data.inputs, data.languages)
    except InputFileError as exc:
        raise LaunchError(f"{exc} (data.inputs / data.languages in {args.config})") from None
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise LaunchError(f"{missing[0]}: no such input file; check data.inputs in {args.config}")
    shard_config(data, ShardSpec(0, data.num_shards))  # what a shard cannot do is refused now, not on the nodes
    prefix = os.path.abspath(data.output_prefix)
    job = ShardJob(config=os.path.abspath(args.config), overrides=tuple(args.overrides), output_prefix=prefix,
                   num_shards=data.num_shards, python=sys.executable, workdir=os.getcwd(),
                   log_dir=str(shards_folder(prefix) / "logs"),
                   site_env=os.path.abspath(settings.site_env) if Path(settings.site_env).is_file() else "")
    return data, settings, job, paths


def submit(args: argparse.Namespace) -> int:
    data, settings, job, paths = _load(args)
    prefix, n = job.output_prefix, job.num_shards
    facts, hashed = shard_facts(data, paths), {}  # hashed: each piece of an input touched since is read once
    is_merged = merged(prefix, n, facts, hashed)
    if is_merged:
        print(f"already merged: {manifest_path(prefix)}; nothing to submit")
        return 0
    if is_merged is None:
        print(f"{manifest_path(prefix)} was merged from other settings, inputs or tokenizer, or from inputs"
              " edited in place since: making it again")
    state = read_state(prefix, n)
    done, stale, edited = finished_shards(prefix, n, facts, hashed)
    if stale:
        print(stale_line(stale, edited, "making them again"))
    states = _queue(state)
    flying = shards_in_flight(states, state.array_jobs)
    waiting_merges = [j for j in state.merge_jobs if j in states]
    todo = [i for i in range(n) if i not in done and i not in flying]
    if not todo and waiting_merges:
        print(progress_line(data, facts, done, len(flying), state, time.time()))
        print(f"nothing to submit: merge job {waiting_merges[-1]} is waiting")
        return 0
    commands = [["scancel", j] for j in waiting_merges]  # it waits for a task that failed: it can never start
    if todo:
        commands.append(sbatch_array_argv(settings, job, todo))
    after = ["<array job id>"] if todo else []
    after += [flying[i] for i in sorted(flying)]
    if args.dry_run:
        for argv in [*commands, sbatch_merge_argv(settings, job, after)]:
            print(shlex.join(argv))
        print(progress_line(data, facts, done, len(flying), state, time.time()))
        return 0
    claim_file(state_path(prefix), LAUNCH_STATE, "data.output_prefix")  # refused before anything is submitted
    Path(job.log_dir).mkdir(parents=True, exist_ok=True)
    state.first_submitted = state.first_submitted or time.time()
    for argv in commands:
        out = _run(argv)
        if argv[0] == "sbatch":
            array_job = parse_job_id(out)
            state.array_jobs.append(array_job)
            after[0] = array_job
            print(f"submitted shards {todo} as array job {array_job}: {shlex.join(argv)}")
        else:
            print(f"cancelled merge job {argv[1]} (it waited for a shard that did not finish)")
    merge_argv = sbatch_merge_argv(settings, job, after)
    merge_job = parse_job_id(_run(merge_argv))
    state.merge_jobs.append(merge_job)
    write_json_with_record(state_path(prefix), LAUNCH_STATE, vars(state), indent=2)
    print(f"submitted the merge as job {merge_job}: {shlex.join(merge_argv)}")
    print(f"logs: {job.log_dir}")
    print(progress_line(data, facts, done, len(flying) + len(todo), state, time.time()))
    return 0


def status(args: argparse.Namespace) -> int:
    data, _, job, paths = _load(args)
    state = read_state(job.output_prefix, job.num_shards)
    facts, hashed = shard_facts(data, paths), {}  # hashed: each piece of an input touched since is read once
    done, stale, edited = finished_shards(job.output_prefix, job.num_shards, facts, hashed)
    if stale:
        print(stale_line(stale, edited, "submit makes them again"))
    flying = shards_in_flight(_queue(state), state.array_jobs)
    print(progress_line(data, facts, done, len(flying), state, time.time()))
    is_merged = merged(job.output_prefix, job.num_shards, facts, hashed)
    if is_merged:
        print(f"merged: {manifest_path(job.output_prefix)}")
    elif is_merged is None:
        print(f"{manifest_path(job.output_prefix)} was merged from other settings, inputs or tokenizer, or from"
              " inputs edited in place since: submit makes it again")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dataset.launch", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name, helptext in (("submit", "submit what is still to do"), ("status", "print the progress")):
        cmd = sub.add_parser(name, help=helptext)
        cmd.add_argument("--config", required=True, help="the run config (data: and cluster: sections)")
        if name == "submit":
            cmd.add_argument("--dry-run", action="store_true", help="print the sbatch commands, submit nothing")
        cmd.add_argument("overrides", nargs="*", metavar="section.key=value")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return submit(args) if args.command == "submit" else status(args)
    except (LaunchError, ConfigError, ShardPlanError, ShardMergeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except SlurmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
