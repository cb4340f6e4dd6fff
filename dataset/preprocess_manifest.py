"""``PREFIX.preprocess.manifest.json``: what a preprocess run read, wrote and skipped, and why.

Written by ``dataset.preprocess`` beside its outputs, last, after every dataset file is in place, so a
manifest that is present vouches for a complete set. It belongs to the output prefix (``out/data/pairs``
-> ``out/data/pairs.preprocess.manifest.json``), so several prefixes in one folder (a blend) keep their own;
the ``.preprocess`` part keeps it apart from a builder's ``pairs.manifest.json`` beside ``pairs.jsonl``.
Readers find the manifest of any dataset prefix the run wrote (the held-out ``PREFIX_valid`` included)
with :func:`find_manifest`. Its counts obey
``records_in == records_written + sum(skipped.values())``. Keys::

    stage, output_prefix, outputs.{train,valid}: {prefix, documents, tokens: {ROLE: n}, files}
    records_in, records_written, skipped: {reason: n}, skipped_examples, blank_lines
    inputs: [{path, sha256}], input_bytes, tokenizer: {path, sha256, vocab_size, eod_id}, dtype, append_eod
    keys: {inputs, targets} (one key: {content: content}), heldout: {records, seed, prefix}, workers, config, timings_s
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from guardrails.atomic_files import write_json_atomic
from dataset.preprocess_outputs import VALID_SUFFIX, PreprocessOutputs, output_files, valid_output_prefix
from dataset.text_tokenizer import TextTokenizer
from runconfig.data_section import DataConfig
from runconfig.strict_json import read_json_strict

MANIFEST_SUFFIX = ".preprocess.manifest.json"


@dataclass
class RunCounts:
    """What the reader saw, counted as the run goes (records = non-blank lines)."""

    records: int = 0
    blank_lines: int = 0
    bytes_read: int = 0
    skipped: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)  # the first few skipped records


def manifest_path(output_prefix: str | Path) -> Path:
    """``PREFIX.preprocess.manifest.json``: the manifest of the run that wrote ``output_prefix``."""
    return Path(f"{output_prefix}{MANIFEST_SUFFIX}")


def find_manifest(dataset_prefix: str | Path) -> Path | None:
    """The manifest that vouches for the datasets at ``dataset_prefix`` (``PREFIX`` or its ``PREFIX_valid``).

    None when no manifest names that prefix among its outputs (data preprocessed by the fork's tools).
    """
    prefix = str(dataset_prefix)
    owners = [prefix]
    if prefix.endswith(VALID_SUFFIX):
        owners.append(prefix[: -len(VALID_SUFFIX)])
    for owner in owners:
        path = manifest_path(owner)
        if path.is_file():
            outputs = read_manifest(path).get("outputs", {})
            # the recorded prefixes are as the run was given them (maybe relative to another working
            # directory); the manifest sits in their folder, so the file name part identifies them
            if any(Path(str(split.get("prefix", ""))).name == Path(prefix).name for split in outputs.values()):
                return path
    return None


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    """Write ``manifest`` as indented JSON under a temporary name, then rename it into place."""
    write_json_atomic(path, manifest, indent=2, sort_keys=False)


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest at ``path`` (a duplicate key is an error naming the line: ``runconfig.strict_json``)."""
    return read_json_strict(path)


REMOVED_MAPS_KEY = "removed_index_maps"  # the fork's index maps of the replaced datasets, removed at the commit


def summary_lines(manifest: dict[str, Any]) -> list[str]:
    """What a finished run (or merge) prints: one line per split written, the skips, the index maps removed."""
    lines = []
    for split, out in manifest["outputs"].items():
        tokens = " and ".join(f"{n} {role} tokens" for role, n in out["tokens"].items())
        roles = ",".join(out["tokens"])
        roles = f"{{{roles}}}" if len(out["tokens"]) > 1 else roles
        lines.append(f"{split}: {out['documents']} documents, {tokens} -> {out['prefix']}_{roles}_document.{{bin,idx}}")
    if manifest["skipped"]:
        lines.append(f"skipped: {manifest['skipped']}")
    removed = manifest.get(REMOVED_MAPS_KEY) or []
    if removed:
        lines.append(f"removed {len(removed)} index map(s) of the replaced data (the fork would reuse them by name):"
                     f" {', '.join(Path(p).name for p in removed)}")
    return lines


def build_manifest(config: DataConfig, tokenizer: TextTokenizer, paths: list[str], digests: list[str],
                   counts: RunCounts, outputs: PreprocessOutputs, heldout: np.ndarray | None, workers: int,
                   timings: dict[str, float]) -> dict[str, Any]:
    """The manifest of a finished run (see the module docstring for the keys)."""
    splits = {
        split: {"prefix": pair.prefix, "documents": pair.documents, "tokens": pair.tokens,
                "files": [str(p) for p in output_files(pair.prefix, pair.roles)]}
        for split, pair in outputs.pairs.items()
    }
    return {
        "stage": "preprocess",
        "output_prefix": config.output_prefix,
        "outputs": splits,
        "records_in": counts.records,
        "records_written": sum(pair.documents for pair in outputs.pairs.values()),
        "skipped": dict(sorted(counts.skipped.items())),
        "skipped_examples": counts.examples,
        "blank_lines": counts.blank_lines,
        "inputs": [{"path": p, "sha256": d} for p, d in zip(paths, digests)],
        "input_bytes": counts.bytes_read,
        "tokenizer": {"path": config.tokenizer, "sha256": tokenizer.sha256, "vocab_size": tokenizer.vocab_size,
                      "eod_id": tokenizer.eod_id},
        "dtype": tokenizer.dtype.name,
        "append_eod": config.append_eod,
        "keys": dict(zip(outputs.roles, config.keys)),
        # --valid-count draws ``heldout``; --valid-fraction decides per record, so its count is what was written
        "heldout": {"records": int(heldout.sum()) if heldout is not None else
                    (outputs.pairs["valid"].documents if "valid" in outputs.pairs else 0), "seed": config.valid_seed,
                    "prefix": valid_output_prefix(config.output_prefix) if "valid" in outputs.pairs else None},
        "workers": workers,
        "config": dataclasses.asdict(config),
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
    }
