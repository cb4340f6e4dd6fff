"""Read the manifests of a sharded preprocess run, check the shards belong together, and sum them up.

Used by ``dataset.merge_shards`` (not a command). A shard counts as finished only when its manifest exists
(``dataset.preprocess`` writes it last, after every dataset file is in place). The shards of one merge must
all have been made for the same shard count, with the same tokenizer (sha256), token dtype, keys and
byte-deciding settings (``dataset.shard_run.output_settings``), over the same input files of the same sizes;
and their pieces, in shard order, must cover those inputs exactly once. Every refusal names the shard, its
manifest and what differs.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from dataset.preprocess_manifest import manifest_path, read_manifest
from dataset.shard_plan import ShardSpec, shard_prefix, shards_folder

MAX_EXAMPLES = 10


class ShardMergeError(ValueError):
    """Shards that cannot be merged (missing, unfinished, or made differently); the message says which."""


def shard_manifest_path(prefix: str, spec: ShardSpec) -> Path:
    return manifest_path(shard_prefix(prefix, spec))


def read_shard_manifests(prefix: str, count: int) -> list[dict[str, Any]]:
    """The manifests of shards ``0..count-1`` of ``prefix``, checked to belong to one run."""
    manifests = []
    for index in range(count):
        path = shard_manifest_path(prefix, ShardSpec(index, count))
        if not path.is_file():
            raise ShardMergeError(
                f"shard {index} of {count} is missing or unfinished: no {path}{_other_counts(prefix, count)};"
                f" make it with python -m dataset.preprocess ... --num-shards {count} --shard-index {index}")
        try:
            manifest = read_manifest(path)
        except (OSError, json.JSONDecodeError) as exc:
            raise ShardMergeError(f"shard {index} of {count}: cannot read {path} ({exc}); remake the shard") from exc
        section = manifest.get("shard") or {}
        if (section.get("index"), section.get("count")) != (index, count):
            raise ShardMergeError(f"shard {index} of {count}: {path} says shard {section.get('index')} of"
                                  f" {section.get('count')}; remake the shard")
        manifests.append(manifest)
    _check_same_run(prefix, manifests)
    _check_coverage(prefix, manifests)
    return manifests


def _other_counts(prefix: str, count: int) -> str:
    folder = shards_folder(prefix)
    counts = sorted({p.name.split("-of-")[-1].lstrip("0") for p in folder.glob("*-of-*")} - {str(count)})
    return f" (the shards folder holds shards of {', '.join(counts)}: another --num-shards?)" if counts else ""


def _facts(manifest: dict[str, Any]) -> dict[str, Any]:
    """What must be equal across the shards of one run, by the name a refusal uses for it."""
    return {
        "tokenizer (sha256)": manifest["tokenizer"]["sha256"],
        "token dtype": manifest["dtype"],
        "keys": manifest["keys"],
        "settings": manifest["shard"]["settings"],
        "input files (paths and sizes)": manifest["shard"]["inputs"],
        "output prefix": manifest["shard"]["output_prefix"],
    }


def _check_same_run(prefix: str, manifests: list[dict[str, Any]]) -> None:
    count = len(manifests)
    first = _facts(manifests[0])
    for index, manifest in enumerate(manifests[1:], start=1):
        for what, value in _facts(manifest).items():
            if value != first[what]:
                if isinstance(value, dict):
                    key = next(k for k in sorted({*value, *first[what]}) if value.get(k) != first[what].get(k))
                    what, value, expected = f"{what} ({key})", value.get(key), first[what].get(key)
                else:
                    expected = first[what]
                raise ShardMergeError(
                    f"shard {index} of {count} ({shard_manifest_path(prefix, ShardSpec(index, count))}) was made"
                    f" with another {what}: {value!r}, but shard 0 with {expected!r}; remake it with the same"
                    " tokenizer, keys, settings and inputs")


def _check_coverage(prefix: str, manifests: list[dict[str, Any]]) -> None:
    """The shards' pieces, in order, must be every input byte once: no gap, no overlap."""
    inputs = manifests[0]["shard"]["inputs"]
    file, offset = 0, 0
    for index, manifest in enumerate(manifests):
        for piece in manifest["shard"]["pieces"]:
            expected = inputs[file]["path"] if file < len(inputs) else "nothing"
            if file >= len(inputs) or (piece["path"], piece["start"]) != (expected, offset):
                raise ShardMergeError(
                    f"shard {index} of {len(manifests)} read {piece['path']} from byte {piece['start']}, but the"
                    f" shards before it end at {expected} byte {offset}: the inputs changed between shards;"
                    " remake them all")
            offset = piece["end"]
            if offset == inputs[file]["bytes"]:
                file, offset = file + 1, 0
    if file != len(inputs):
        raise ShardMergeError(f"the shards stop at {inputs[file]['path']} byte {offset}: the inputs changed"
                              " between shards; remake them all")


def merged_manifest(prefix: str, manifests: list[dict[str, Any]], outputs: dict[str, dict[str, Any]],
                    timings: dict[str, float]) -> dict[str, Any]:
    """The manifest of the merged dataset: the shards' counts summed, their skips by reason, their hashes."""
    first = manifests[0]
    skipped: Counter = Counter()
    examples: list[str] = []
    for m in manifests:
        skipped.update(m["skipped"])
        examples.extend(m["skipped_examples"][:MAX_EXAMPLES - len(examples)])
    settings = first["shard"]["settings"]
    return {
        "stage": "merge_shards",
        "output_prefix": prefix,
        "outputs": outputs,
        "records_in": sum(m["records_in"] for m in manifests),
        "records_written": sum(o["documents"] for o in outputs.values()),
        "skipped": dict(sorted(skipped.items())),
        "skipped_examples": examples,
        "blank_lines": sum(m["blank_lines"] for m in manifests),
        "inputs": first["shard"]["inputs"],
        "input_bytes": sum(m["input_bytes"] for m in manifests),
        "pieces": [{"shard": i, **p} for i, m in enumerate(manifests) for p in m["shard"]["pieces"]],
        "tokenizer": first["tokenizer"],
        "dtype": first["dtype"],
        "append_eod": first["append_eod"],
        "keys": first["keys"],
        "heldout": {"records": outputs["valid"]["documents"] if "valid" in outputs else 0,
                    "fraction": settings["valid_fraction"], "seed": settings["valid_seed"],
                    "prefix": outputs["valid"]["prefix"] if "valid" in outputs else None},
        "shards": [{"index": i, "manifest": str(shard_manifest_path(prefix, ShardSpec(i, len(manifests)))),
                    "records_in": m["records_in"], "input_bytes": m["input_bytes"],
                    "seconds": m["timings_s"].get("total")} for i, m in enumerate(manifests)],
        "config": {**settings, "output_prefix": prefix, "num_shards": len(manifests)},
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
    }
