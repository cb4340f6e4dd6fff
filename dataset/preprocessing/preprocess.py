"""jsonl -> Megatron indexed datasets (``PREFIX_{inputs,targets}_document.{bin,idx}``), byte-identical to the fork.

The code of ``python -m dataset.preprocess``; how to run it and what it does: the docstring of its entry point
``dataset/preprocess.py``.
"""
from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import os
import sys
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from guardrails.command_errors import outputs_state, signals_deferred
from guardrails.output_paths import OutputRefused, check_output_prefix, note_complete, prefix_claim
from dataset.preprocessing.byte_progress import byte_progress
from dataset.preprocessing.chunk_encoder import EncodedChunk, encode_chunk, init_worker
from dataset.preprocessing.heldout import HeldOutError, check_heldout_result, select_heldout
from dataset.formats.input_files import count_input_records, expand_inputs, iter_input_chunks
from dataset.formats.jsonl_records import InputFileError, InvalidRecordError, LongLine, RecordIssue
from dataset.formats.preprocess_manifest import (
    REMOVED_MAPS_KEY, RunCounts, build_manifest, manifest_path, summary_lines, write_manifest,
)
from dataset.formats.preprocess_outputs import PreprocessOutputs, claim_run_files, roles_for_keys
from dataset.preprocessing.shard_plan import LineNumbers, ShardPlanError, ShardSpec, plan_shard
from dataset.preprocessing.shard_run import resolve_shard, shard_config, shard_manifest_section
from dataset.formats.text_tokenizer import TextTokenizer, TokenizerFileError
from runconfig import ConfigError, build_dataclass, parse_overrides
from runconfig.run_config import read_checked_sections
from runconfig.data_section import DataConfig

CHUNK_BYTES = 1 << 19  # jsonl bytes per worker task: small enough that no worker idles long at the end
IN_FLIGHT_PER_WORKER = 3  # chunks read but not yet written, per worker: bounds memory whatever the input
MAX_EXAMPLES = 10


class PreprocessError(ValueError):
    """A run that cannot produce a useful dataset (no valid records, inputs changed under us...)."""


@dataclass
class PreprocessSummary:
    """What a run did; ``PREFIX.preprocess.manifest.json`` holds ``manifest``."""

    manifest: dict[str, Any]
    manifest_path: Path


def resolve_workers(workers: int) -> int:
    """Worker processes to run: ``workers``, or one per usable core for 0."""
    return workers or len(os.sched_getaffinity(0))


def preprocess(config: DataConfig, progress: bool = False, shard: ShardSpec | None = None) -> PreprocessSummary:
    """Tokenize ``config.inputs`` into the datasets at ``config.output_prefix``; all or nothing.

    ``progress``: a bar on stderr when it is a terminal, else a line every few seconds (``dataset.preprocessing.byte_progress``).
    With ``shard``, only that shard's part of the inputs, into its partial dataset beside the prefix.
    """
    started = time.perf_counter()
    if not config.inputs or not config.tokenizer or not config.output_prefix:
        raise PreprocessError("need --input, --tokenizer and --output-prefix (or data.inputs/tokenizer/output_prefix)")
    check_output_prefix(str(config.output_prefix))
    paths = expand_inputs(config.inputs, config.languages)  # folders of languages -> their files
    for path in paths:
        if not Path(path).is_file():
            raise InputFileError(f"{path}: no such input file; check --input")
    pieces = plan_shard(paths, shard or ShardSpec(0, 1))
    final_config, config = config, shard_config(config, shard)
    # refused before any work: a file at the prefix that no record of an earlier run proves (a dataset made
    # separately at PREFIX_valid, the fork's own files); checked again when the files are put in place
    claim_run_files(manifest_path(config.output_prefix), str(config.output_prefix), roles_for_keys(config.keys),
                    bool(config.valid_count or config.valid_fraction))
    lines = LineNumbers(pieces)
    tokenizer = TextTokenizer(config.tokenizer)
    workers = resolve_workers(config.workers)
    timings: dict[str, float] = {}

    mask = None
    if config.valid_count:
        mask = select_heldout(count_input_records(paths, config.max_line_bytes), config.valid_count,
                              config.valid_seed)
        timings["count_records"] = time.perf_counter() - started

    state, digests = RunCounts(), []
    outputs = PreprocessOutputs(config.output_prefix, tokenizer.dtype,
                                with_valid=mask is not None or config.valid_fraction > 0,
                                roles=roles_for_keys(config.keys))
    heldout_rule = (config.valid_fraction, config.valid_seed) if config.valid_fraction else None
    bar = _progress(paths, progress)
    pool: ProcessPoolExecutor | None = None
    try:
        with signals_deferred():  # a signal while the workers are forked would be lost in an at-fork hook
            pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                                       initializer=init_worker, initargs=(tokenizer, os.getpid()))
            pool.submit(os.getpid).result()  # the workers start now, not at the first chunk
        in_flight: deque[Future | LongLine] = deque()

        def write_oldest() -> None:
            item = in_flight.popleft()
            if isinstance(item, LongLine):
                state.records += 1
                _reject(lines.locate(item.issue(config.max_line_bytes)), config.skip_invalid, state)
            else:
                _write_chunk(item.result(), state, tokenizer, config, mask, outputs, lines)

        keys = tuple(config.keys)
        for piece in pieces:
            for chunk in iter_input_chunks(piece.path, keys, config.max_line_bytes, CHUNK_BYTES, digests,
                                           piece.byte_range):
                if isinstance(chunk, LongLine):
                    in_flight.append(chunk)
                    size = chunk.size + 1
                else:
                    in_flight.append(pool.submit(encode_chunk, chunk, keys, config.max_line_bytes, heldout_rule))
                    size = len(chunk.data) + 1
                state.bytes_read += size
                bar.update(size)
                while len(in_flight) > IN_FLIGHT_PER_WORKER * workers:
                    write_oldest()
        while in_flight:
            write_oldest()
        timings["read_tokenize_write"] = time.perf_counter() - started - timings.get("count_records", 0.0)

        if mask is not None and state.records != len(mask):
            raise PreprocessError(f"inputs changed while reading: counted {len(mask)} records, then {state.records}")
        if shard is None and heldout_rule is not None:
            check_heldout_result(config.valid_fraction, outputs.pairs["train"].documents,
                                 outputs.pairs["valid"].documents)
        if shard is None and outputs.pairs["train"].documents == 0:  # a shard may be empty; the merge checks
            raise PreprocessError(f"no valid records to write ({state.records} read, skipped: {dict(state.skipped)})")
        committing = time.perf_counter()
        path = manifest_path(config.output_prefix)
        removed_maps = outputs.commit(path)
        timings["commit"] = time.perf_counter() - committing
        timings["total"] = time.perf_counter() - started
        manifest = build_manifest(config, tokenizer, [p.path for p in pieces], digests, state, outputs,
                                  mask, workers, timings)
        manifest[REMOVED_MAPS_KEY] = [str(p) for p in removed_maps]
        if shard is not None:
            manifest["shard"] = shard_manifest_section(final_config, shard, paths, pieces, digests)
        write_manifest(path, manifest, outputs.files)
        note_complete(prefix_claim(str(config.output_prefix)))  # an interrupt from here on: "complete"
        return PreprocessSummary(manifest, path)
    except BaseException:
        outputs.abort()
        raise
    finally:
        # One shutdown that joins the pool's manager thread, on every path: a shutdown(wait=False) first would
        # drop the executor's handle on that thread, so the second could not join it, and the interpreter's exit
        # handler then raced the still-running thread ("OSError: [Errno 9] Bad file descriptor").
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()


def _reject(issue: RecordIssue, skip_invalid: bool, state: RunCounts) -> None:  # issue already located
    if not skip_invalid:
        raise InvalidRecordError(issue)
    state.skipped[issue.reason] += 1
    if len(state.examples) < MAX_EXAMPLES:
        state.examples.append(issue.summary())


def _write_chunk(chunk: EncodedChunk, state: RunCounts, tokenizer: TextTokenizer, config: DataConfig,
                 mask: np.ndarray | None, outputs: PreprocessOutputs, lines: LineNumbers) -> None:
    """Append one encoded chunk to its split(s); a record with an empty side is rejected whole."""
    first_ordinal = state.records
    state.records += chunk.num_records
    if mask is not None and state.records > len(mask):
        raise PreprocessError(f"{chunk.path} changed while being read: it has more records than counted")
    state.blank_lines += chunk.blank_lines
    n, roles = len(chunk.local), outputs.roles
    lengths = {role: chunk.encoded.lengths[i * n:(i + 1) * n] for i, role in enumerate(roles)}
    cuts = np.cumsum([0] + [int(lengths[role].sum()) for role in roles])
    tokens = {role: chunk.encoded.tokens[cuts[i]:cuts[i + 1]] for i, role in enumerate(roles)}
    keep = np.logical_and.reduce([lengths[role] > 0 for role in roles])
    issues = list(chunk.issues)
    for j in np.flatnonzero(~keep):
        role = next(r for r in roles if lengths[r][j] == 0)
        issues.append((int(chunk.local[j]), RecordIssue(
            chunk.path, int(chunk.lines[j]), config.keys[roles.index(role)],
            "no_tokens", "the field tokenizes to zero tokens")))
    for _, issue in sorted(issues, key=lambda pair: pair[0]):  # the first bad line in file order stops the run
        _reject(lines.locate(issue), config.skip_invalid, state)
    if config.append_eod:  # the fork appends EOD to every (non-empty) document
        for role in roles:
            eod = np.array(tokenizer.eod_id, dtype=tokens[role].dtype)
            tokens[role] = np.insert(tokens[role], np.cumsum(lengths[role]), eod)
            lengths[role] = lengths[role] + 1
    if chunk.heldout is not None:  # --valid-fraction: each record's own hash decides
        heldout = chunk.heldout
    else:
        heldout = mask[first_ordinal + chunk.local] if mask is not None else np.zeros(n, dtype=bool)
    for split, chosen in (("train", keep & ~heldout), ("valid", keep & heldout)):
        if split not in outputs.pairs:
            continue
        if chosen.all():
            outputs.pairs[split].add(tokens, lengths)
        elif chosen.any():
            outputs.pairs[split].add({r: tokens[r][np.repeat(chosen, lengths[r])] for r in roles},
                                     {r: lengths[r][chosen] for r in roles})


def _progress(paths: list[str], progress: bool) -> Any:
    # the size of a .gz file, or of a parquet file, says nothing about the bytes of text (JSON) read from it
    plain = all(not str(p).endswith((".gz", ".parquet")) for p in paths)
    total = sum(Path(p).stat().st_size for p in paths) if plain else None
    return byte_progress(total, "preprocess", terminal=sys.stderr.isatty(), enabled=progress)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dataset.preprocess", description=__doc__.split("\n")[0])
    p.add_argument("--input", nargs="+", dest="inputs",
                   help="jsonl (plain or .gz) or parquet files, read in order; or a folder of languages (--languages)")
    p.add_argument("--languages", type=lambda text: tuple(x for x in text.split(",") if x),
                   help="comma-separated language folders to read from a folder --input (e.g. go,rust)")
    p.add_argument("--tokenizer", help="tokenizer.json (Hugging Face tokenizers)")
    p.add_argument("--output-prefix", dest="output_prefix", help="writes PREFIX_{inputs,targets}_document.*")
    p.add_argument("--keys", nargs="+", metavar="KEY",
                   help="JSON fields: INPUTS TARGETS (default: inputs targets), or one field of raw documents")
    p.add_argument("--workers", type=int, help="tokenizer processes (default 0: one per core)")
    p.add_argument("--append-eod", dest="append_eod", action="store_const", const=True,
                   help="append <|endoftext|> to every document (as the fork's --append-eod)")
    p.add_argument("--skip-invalid", dest="skip_invalid", action="store_const", const=True,
                   help="skip bad records and count them by reason instead of stopping")
    p.add_argument("--valid-fraction", dest="valid_fraction", type=float, help="hold out this fraction")
    p.add_argument("--valid-count", dest="valid_count", type=int, help="hold out this many records")
    p.add_argument("--valid-seed", dest="valid_seed", type=int, help="seed of the hold-out draw (default 1234)")
    p.add_argument("--max-line-bytes", dest="max_line_bytes", type=int, help="longest accepted line")
    p.add_argument("--num-shards", dest="num_shards", type=int,
                   help="make one of N shards (merge them with python -m dataset.merge_shards)")
    p.add_argument("--shard-index", dest="shard_index", type=int,
                   help="which shard, 0..N-1 (default: $SLURM_ARRAY_TASK_ID)")
    p.add_argument("--config", help="run config YAML; its data: section gives the defaults")
    p.add_argument("overrides", nargs="*", metavar="data.KEY=VALUE", help="overrides of the data: section")
    return p


def _is_override(word: str) -> bool:
    """``data.workers=2``, ``workers=2`` or ``section.key=value``; a file ``y=1.jsonl`` is not one (no such key)."""
    key = word.split("=", 1)[0] if "=" in word else ""
    return "." in key.strip(".") or key in {f.name for f in dataclasses.fields(DataConfig)}


def resolve_config(args: argparse.Namespace) -> DataConfig:
    """The ``data:`` section of ``--config``, then ``key=value`` overrides, then explicit flags."""
    if args.inputs:  # "--input a.jsonl data.workers=2": argparse hands the override to --input
        overrides = [i for i in args.inputs if _is_override(i) and not Path(i).exists()]
        args.inputs = [i for i in args.inputs if i not in overrides] or None
        args.overrides = [*args.overrides, *overrides]
    if args.keys:  # the same for "--keys content data.workers=2"
        args.overrides = [*args.overrides, *(k for k in args.keys if _is_override(k))]
        args.keys = [k for k in args.keys if not _is_override(k)] or None
    # the whole run config is checked first (every section, unknown ones, duplicate keys), flags or not
    sections = read_checked_sections(args.config, args.overrides, "data") if args.config else {}
    values = dict(sections.get("data") or {})
    values.update(parse_overrides(args.overrides, "data"))
    flags = {f.name: getattr(args, f.name) for f in dataclasses.fields(DataConfig)
             if getattr(args, f.name, None) is not None}
    if "valid_count" in flags and "valid_fraction" not in flags:
        values.pop("valid_fraction", None)  # a flag replaces the config's way of sizing the hold-out
    if "valid_fraction" in flags and "valid_count" not in flags:
        values.pop("valid_count", None)
    values.update(flags)
    return build_dataclass(DataConfig, values, f"{args.config or '<command line>'}:data")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = resolve_config(args)
        summary = preprocess(config, progress=True, shard=resolve_shard(config, args.shard_index))
    except (ConfigError, InvalidRecordError, InputFileError, TokenizerFileError, HeldOutError,
            PreprocessError, OutputRefused, ShardPlanError) as exc:  # interrupts: guardrails.command_errors
        print(f"preprocess: error: {exc} ({outputs_state()})", file=sys.stderr)
        return 2
    except BrokenProcessPool as exc:
        print(f"preprocess: error: a tokenizer worker died ({exc}); out of memory? try fewer --workers"
              f" ({outputs_state()})", file=sys.stderr)
        return 1
    m = summary.manifest
    print("\n".join(summary_lines(m)))
    print(f"manifest: {summary.manifest_path} ({m['timings_s']['total']:.2f} s)")
    return 0
