"""Turn a downloaded Megatron checkpoint (``iter_*``) into a ``release`` checkpoint, leaving the original intact.

    python -m conversion.prepare_release --megatron SRC_ROOT --out NEW_ROOT [--iteration N] [--copy]

The fork fine-tunes from ``--load NEW_ROOT --finetune``, which wants ``NEW_ROOT/release/mp_rank_*`` and a
tracker holding ``release``. Every shard of the source iteration (default: the source tracker's) is
checked first: all TP x PP rank folders present, args agreeing with the folder layout, every parameter
present with the shape the args imply. Shards are then hard-linked (no extra disk, same filesystem) or
copied (``--copy``, or automatically across filesystems) into a root that appears atomically with
``release_manifest.json`` last (an existing ``--out`` must be empty or proven by that record to be an earlier
output of this command: ``conversion.output_kinds``). A
distributed-optimizer ``model_rng.pt`` becomes ``model_optim_rng.pt`` (the optimizer is not carried).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from guardrails.command_errors import run_command
from guardrails.atomic_folder import atomic_output_dir
from conversion.checkpoint_format import (
    CheckpointFormatError, CheckpointLayout, checkpoint_file_path, discover_layout, load_checkpoint_file,
    write_tracker,
)
from conversion.key_map import flatten_model
from conversion.megatron_reader import MegatronReader, megatron_shard_shapes
from conversion.output_kinds import release_root_kind
from guardrails.output_paths import claim_folder
from guardrails.output_records import write_record

RELEASE_ROOT = release_root_kind("conversion.prepare_release")


def validate_shards(layout: CheckpointLayout) -> int:
    """Check every shard of ``layout`` against its args; returns how many parameters were checked."""
    reader = MegatronReader(layout.root, layout.tag)  # checks args vs. folder layout
    checked = 0
    for stage in range(layout.pp):
        expected = megatron_shard_shapes(reader.args, layout.tp, layout.pp, stage)
        for tp_rank in range(layout.tp):
            path = layout.model_file(tp_rank, stage)
            ckpt = load_checkpoint_file(path, mmap=True)
            if "model" not in ckpt:
                raise CheckpointFormatError(f"{path}: top-level key 'model' missing")
            flat = flatten_model(ckpt["model"])
            for name, shape in expected.items():
                if name not in flat:
                    raise CheckpointFormatError(f"{path}: parameter {name!r} missing")
                if tuple(flat[name].shape) != shape:
                    raise CheckpointFormatError(
                        f"{path}: {name} has shape {tuple(flat[name].shape)}, expected {shape}"
                        f" (args: tp={layout.tp} pp={layout.pp} stage={stage})"
                    )
            unexpected = sorted(k for k in flat if k not in expected and not k.endswith("_extra_state"))
            if unexpected:
                raise CheckpointFormatError(f"{path}: unexpected parameter {unexpected[0]!r} for stage {stage}")
            checked += len(expected)
    return checked


def _place(src: Path, dest: Path, copy: bool) -> None:
    """Hard-link ``src`` to ``dest`` (no extra disk), or copy it when asked or when a link is impossible."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not copy:
        try:
            os.link(src, dest)
            return
        except OSError:
            pass  # another filesystem, or links not allowed: fall back to a copy
    shutil.copyfile(src, dest)


def prepare_release(src_root: str | Path, out_root: str | Path, iteration: int | None = None,
                    copy: bool = False) -> Path:
    """Validate ``src_root``'s iteration and build ``out_root`` with ``release/`` and its tracker."""
    src_root, out_root = Path(src_root).resolve(), Path(out_root).resolve()
    claim_folder(out_root, RELEASE_ROOT, "--out", inputs=[src_root])  # only an earlier release of ours is replaced
    layout = discover_layout(src_root, str(iteration) if iteration is not None else None)
    validate_shards(layout)
    with atomic_output_dir(out_root) as tmp:
        for stage in range(layout.pp):
            for tp_rank in range(layout.tp):
                dest = checkpoint_file_path(tmp, "release", tp_rank, stage, layout.tp, layout.pp)
                _place(layout.model_file(tp_rank, stage), dest, copy)
        write_tracker(tmp, "release")
        write_record(tmp / RELEASE_ROOT.record, RELEASE_ROOT, tmp,
                     facts={"source": str(src_root), "iteration": layout.tag, "tp": layout.tp, "pp": layout.pp})
    return out_root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conversion.prepare_release", description=__doc__.split("\n")[0])
    parser.add_argument("--megatron", required=True, help="source checkpoint root (holds iter_*/ and a tracker)")
    parser.add_argument("--out", required=True, help="checkpoint root to create (new, empty, or a release root)")
    parser.add_argument("--iteration", type=int, help="iteration to release (default: the source tracker's)")
    parser.add_argument("--copy", action="store_true", help="copy the shards instead of hard-linking them")
    ns = parser.parse_args(argv)
    try:
        out = prepare_release(ns.megatron, ns.out, ns.iteration, ns.copy)
    except (ValueError, FileNotFoundError) as exc:  # other OSErrors: guardrails.command_errors
        print(f"prepare_release: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out} (tracker: release)")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_command(main))
