"""Merge the shards of a sharded preprocess run into the dataset one process would have written.

Run::

    python -m dataset.merge_shards --output-prefix out/data/pairs --num-shards N [--remove-shards]

after ``python -m dataset.preprocess ... --output-prefix out/data/pairs --num-shards N --shard-index I`` ran
for every ``I`` (by hand or as a SLURM array: ``dataset.launch``). It checks that all ``N`` shards are
finished and belong to one run (``dataset.shard_manifests``: same tokenizer, keys, settings and inputs, and
together every input byte once), then writes ``PREFIX_{inputs,targets}_document.{bin,idx}`` (and the
``PREFIX_valid_...`` pair with a hold-out) byte-identical to a single-process run with the same flags,
whatever ``N``: the shards hold whole records in input order and the hold-out is decided per record
(``dataset.heldout``). The files are joined by ``dataset.indexed_concat``: streaming, flat memory, close to
copy speed. Outputs appear as in ``dataset.preprocess``: every ``.bin``, then every ``.idx``, then the merged
manifest (counts, skips by reason, the shards' input hashes) where a single run puts its manifest.
``--remove-shards`` deletes the shard folders once the merge is in place. Exit status 2 for shards that
cannot be merged (the message names the shard), 1 for a system error; nothing is half-written either way.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guardrails.command_errors import run_command
from guardrails.output_paths import check_output_prefix, note_complete, prefix_claim
from dataset.heldout import HeldOutError, check_heldout_result
from dataset.indexed_concat import ConcatenatedDataset
from dataset.indexed_dataset import IndexFormatError, remove_stale_temporaries
from dataset.preprocess_manifest import REMOVED_MAPS_KEY, manifest_path, summary_lines, write_manifest
from dataset.preprocess_outputs import commit_datasets, document_prefix, valid_output_prefix
from dataset.shard_manifests import ShardMergeError, merged_manifest, read_shard_manifests
from dataset.shard_plan import ShardPlanError, ShardSpec, shard_prefix, shards_folder

SPLITS = ("train", "valid")


@dataclass
class MergeSummary:
    manifest: dict[str, Any]
    manifest_path: Path


def split_prefix(prefix: str, split: str) -> str:
    return prefix if split == "train" else valid_output_prefix(prefix)


def merge_shards(prefix: str, count: int, remove_shards: bool = False) -> MergeSummary:
    """Check and join shards ``0..count-1`` of ``prefix`` into ``prefix``'s datasets; all or nothing."""
    started = time.perf_counter()
    check_output_prefix(prefix)
    ShardSpec(0, count)  # validates count
    manifests = read_shard_manifests(prefix, count)
    first = manifests[0]
    roles = list(first["keys"])
    splits = [s for s in SPLITS if s in first["outputs"]]
    documents = {s: sum(m["outputs"][s]["documents"] for m in manifests) for s in splits}
    if not documents["train"] and not first["shard"]["settings"]["valid_fraction"]:
        raise ShardMergeError(f"no valid records in any of the {count} shards"
                              f" ({sum(m['records_in'] for m in manifests)} read); nothing to merge")
    check_heldout_result(first["shard"]["settings"]["valid_fraction"], documents["train"], documents.get("valid", 0))

    datasets: dict[str, dict[str, ConcatenatedDataset]] = {}
    for split in splits:
        datasets[split] = {}
        for role in roles:
            target = document_prefix(split_prefix(prefix, split), role)
            remove_stale_temporaries(target)
            sources = [document_prefix(split_prefix(shard_prefix(prefix, ShardSpec(i, count)), split), role)
                       for i in range(count)]
            datasets[split][role] = ConcatenatedDataset(target, sources, first["dtype"])
            _check_files_match(datasets[split][role], manifests, split, role)
    every = [d for by_role in datasets.values() for d in by_role.values()]
    try:
        for dataset in every:
            dataset.finalize()
        copied = time.perf_counter()
        path = manifest_path(prefix)
        removed_maps = commit_datasets(prefix, roles, every, path)
    except BaseException:
        for dataset in every:
            dataset.abort()
        raise
    outputs = {split: {"prefix": split_prefix(prefix, split), "documents": documents[split],
                       "tokens": {role: datasets[split][role].num_tokens for role in roles},
                       "files": [str(p) for d in datasets[split].values() for p in (d.bin_path, d.idx_path)]}
               for split in splits}
    timings = {"copy": copied - started, "total": time.perf_counter() - started}
    manifest = merged_manifest(prefix, manifests, outputs, timings)
    manifest[REMOVED_MAPS_KEY] = [str(p) for p in removed_maps]
    write_manifest(path, manifest)
    note_complete(prefix_claim(prefix))  # an interrupt from here on: "complete"
    if remove_shards:
        _remove_shards(prefix, count)
    return MergeSummary(manifest, path)


def _check_files_match(dataset: ConcatenatedDataset, manifests: list[dict[str, Any]], split: str, role: str) -> None:
    """Each shard's files must hold what its manifest says (not replaced or cut since)."""
    for index, (source, manifest) in enumerate(zip(dataset.sources, manifests)):
        said = manifest["outputs"][split]
        found = (source.num_sequences, source.bin_bytes // dataset.dtype.itemsize)
        if found != (said["documents"], said["tokens"][role]):
            raise ShardMergeError(
                f"shard {index} of {len(manifests)}: {source.prefix} holds {found[0]} documents and {found[1]} tokens,"
                f" its manifest says {said['documents']} and {said['tokens'][role]}: changed since; remake the shard")


def _remove_shards(prefix: str, count: int) -> None:
    """Delete the ``count`` shard folders this merge read (only those), then the shards folder if empty."""
    for index in range(count):
        shutil.rmtree(Path(shard_prefix(prefix, ShardSpec(index, count))).parent)
    try:
        shards_folder(prefix).rmdir()
    except OSError:
        pass


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dataset.merge_shards", description=__doc__.split("\n")[0])
    p.add_argument("--output-prefix", required=True, help="the --output-prefix the shards were made with")
    p.add_argument("--num-shards", type=int, required=True, help="the --num-shards they were made with")
    p.add_argument("--remove-shards", action="store_true", help="delete the shard folders after the merge")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        summary = merge_shards(args.output_prefix, args.num_shards, args.remove_shards)
    except (ShardMergeError, ShardPlanError, HeldOutError, IndexFormatError) as exc:
        print(f"error: {exc}\nNo output was written.", file=sys.stderr)
        return 2
    m = summary.manifest
    print("\n".join(summary_lines(m)))
    print(f"merged {args.num_shards} shards; manifest: {summary.manifest_path} ({m['timings_s']['total']:.2f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_command(main))
