"""Read the manifests of a sharded preprocess run, check the shards belong together, and sum them up.

Used by ``dataset.merge_shards`` (not a command). A shard counts as finished only when its manifest exists
(``dataset.preprocess`` writes it last, after every dataset file is in place). The shards of one merge must
all have been made for the same shard count, with the same tokenizer (sha256), token dtype, keys and
byte-deciding settings (``dataset.preprocessing.shard_run.output_settings``), over the same input files of the same sizes;
their pieces, in shard order, must cover those inputs exactly once; and where shards saw an input at different
times, each piece must still hash as its shard recorded (one version of the file). A damaged manifest (cut, not
an object, keys missing) is refused like a missing one. Every refusal names the shard, its manifest and what
differs.
"""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

from dataset.formats.input_files import range_sha256
from dataset.formats.preprocess_manifest import manifest_path, read_manifest
from dataset.preprocessing.shard_plan import ShardSpec, shard_prefix, shards_folder

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
        manifests.append(read_shard_manifest(path, index, count))
    _check_same_run(prefix, manifests)
    _check_coverage(prefix, manifests)
    _check_one_version(prefix, manifests)
    return manifests


# what the merge and dataset.launch read from a shard's manifest: a key's dotted path and its type
_SHAPE: dict[str, type | tuple[type, ...]] = {
    "shard": dict, "shard.index": int, "shard.count": int, "shard.inputs": list, "shard.pieces": list,
    "shard.settings": dict, "shard.settings.valid_fraction": (int, float), "shard.settings.valid_seed": int,
    "shard.output_prefix": str, "tokenizer": dict, "tokenizer.sha256": str, "dtype": str, "keys": dict,
    "append_eod": bool, "outputs": dict, "records_in": int, "skipped": dict, "skipped_examples": list,
    "blank_lines": int, "input_bytes": int, "timings_s": dict,
}
_ITEM_SHAPE = {"shard.inputs": {"path": str, "bytes": int}, "outputs": {"documents": int, "tokens": dict},
               "shard.pieces": {"path": str, "start": int, "end": int, "sha256": str}}


def read_shard_manifest(path: Path, index: int, count: int) -> dict[str, Any]:
    """Shard ``index`` of ``count``'s manifest, with every key the merge reads; else one clear refusal.

    A manifest cut short, replaced by a list or missing keys used to end in a traceback.
    """
    try:
        manifest = read_manifest(path)
    except (OSError, ValueError) as exc:  # ValueError: invalid JSON, a key twice (runconfig.strict_json)
        raise ShardMergeError(f"shard {index} of {count}: cannot read {path} ({exc}); remake the shard") from exc
    problem = _shape_problem(manifest)
    if problem:
        raise ShardMergeError(f"shard {index} of {count}: {path} is damaged ({problem}); remake the shard")
    section = manifest["shard"]
    if (section["index"], section["count"]) != (index, count):
        raise ShardMergeError(f"shard {index} of {count}: {path} says shard {section['index']} of"
                              f" {section['count']}; remake the shard")
    return manifest


def _shape_problem(manifest: Any) -> str | None:
    if not isinstance(manifest, dict):
        return f"a JSON {type(manifest).__name__}, not an object"
    for dotted, kind in _SHAPE.items():
        value: Any = manifest
        for key in dotted.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            return f"{dotted} is missing or not a {getattr(kind, '__name__', 'number')}"
        for key, item_kind in _ITEM_SHAPE.get(dotted, {}).items():
            items = value.values() if isinstance(value, dict) else value
            if any(not isinstance(item, dict) or not isinstance(item.get(key), item_kind) for item in items):
                return f"an entry of {dotted} has no {key} ({item_kind.__name__})"
    return None


def run_facts(settings: dict[str, Any], inputs: list[dict[str, Any]], tokenizer_sha256: str) -> dict[str, Any]:
    """What makes shards (or a merged dataset) this run's: byte-deciding settings, input paths and sizes, tokenizer.

    ``dataset.launch`` compares them with the run config to tell finished work from work made otherwise.
    """
    return {"settings": settings, "inputs": [{"path": i["path"], "bytes": i["bytes"]} for i in inputs],
            "tokenizer": tokenizer_sha256}


def shard_run_facts(manifest: dict[str, Any]) -> dict[str, Any]:
    shard = manifest["shard"]
    return run_facts(shard["settings"], shard["inputs"], manifest["tokenizer"]["sha256"])


def merged_run_facts(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The facts of a merged dataset's manifest (``merged_manifest``), None when it is not one of those."""
    try:
        settings = {k: v for k, v in manifest["config"].items() if k not in ("output_prefix", "num_shards")}
        return run_facts(settings, manifest["inputs"], manifest["tokenizer"]["sha256"])
    except (KeyError, TypeError, AttributeError):
        return None


def edited_inputs(inputs: Any, pieces: Any, hashed: dict[tuple[str, int, int], str] | None = None) -> list[str]:
    """The inputs whose bytes a shard (or a merge) read, ``pieces`` with their sha256, hold other bytes now: an
    input edited in place at the same size, which the paths and sizes of :func:`run_facts` cannot tell.

    An input whose modification time is still the one recorded in ``inputs`` is taken as read (no I/O beyond a
    stat); the pieces of any other input are hashed again, so a file only touched still counts as the same. A
    piece list that is not one (a damaged manifest) counts every input as edited: the work is made again.
    ``hashed``: ``(path, start, end) -> sha256`` of the pieces one command has hashed already (a merge's pieces
    are its shards' pieces), so that no byte of an input is read twice to answer one command.
    """
    hashed = {} if hashed is None else hashed
    recorded = {i.get("path"): i.get("mtime_ns") for i in inputs if isinstance(i, dict)} \
        if isinstance(inputs, list) else {}
    if not isinstance(pieces, list) or not pieces or any(not isinstance(p, dict) or _piece_problem(p) for p in pieces):
        return sorted(p for p in recorded if isinstance(p, str)) or ["(the manifest lists no pieces)"]
    edited: list[str] = []
    for piece in pieces:
        path = piece["path"]
        if path in edited:
            continue
        try:
            if recorded.get(path) is not None and os.stat(path).st_mtime_ns == recorded[path]:
                continue
            key = (path, piece["start"], piece["end"])
            if key not in hashed:
                hashed[key] = range_sha256(*key)
            same = hashed[key] == piece["sha256"]
        except OSError:
            same = False
        if not same:
            edited.append(path)
    return edited


def _piece_problem(piece: dict[str, Any]) -> bool:
    return not (isinstance(piece.get("path"), str) and isinstance(piece.get("sha256"), str)
                and all(isinstance(piece.get(k), int) for k in ("start", "end")))


def _check_one_version(prefix: str, manifests: list[dict[str, Any]]) -> None:
    """Shards that saw an input at different modification times may have read two versions of it (an edit
    in place keeps the size, so the plan and the coverage still agree): the pieces of such an input are
    hashed again and compared with what each shard recorded. Inputs every shard saw at one time cost nothing.
    """
    times: dict[str, set[Any]] = {}
    for manifest in manifests:
        for item in manifest["shard"]["inputs"]:
            times.setdefault(item["path"], set()).add(item.get("mtime_ns"))
    changed = {path for path, seen in times.items() if len(seen) > 1}
    count = len(manifests)
    for index, manifest in enumerate(manifests):
        for piece in manifest["shard"]["pieces"]:
            if piece["path"] not in changed:
                continue
            if range_sha256(piece["path"], piece["start"], piece["end"]) != piece["sha256"]:
                raise ShardMergeError(
                    f"shard {index} of {count} ({shard_manifest_path(prefix, ShardSpec(index, count))})"
                    f" read bytes {piece['start']}-{piece['end']} of {piece['path']}, which hold other bytes now: the"
                    " file was edited while the shards were made, so they hold two versions of it; remake them all")


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
        "input files (paths and sizes)": shard_run_facts(manifest)["inputs"],
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
