"""What ``dataset.preprocess`` does differently for one shard of a run (not a command).

A shard run is an ordinary run over the shard's pieces of the inputs (``dataset.preprocessing.shard_plan``), written to the
shard's own prefix (``PREFIX.shards/IIIII-of-NNNNN/part``) with the usual atomic outputs and manifest, plus a
``shard`` section in that manifest: which shard, the final prefix, every input's size (the plan's basis) and
modification time, the pieces read with their sha256, and the settings that decide the bytes written.
``dataset.merge_shards`` accepts shards only when those settings and input sizes agree across all of them.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any

from dataset.preprocessing.shard_plan import InputPiece, ShardPlanError, ShardSpec, input_stats, shard_prefix
from runconfig.data_section import DataConfig

ARRAY_TASK_VARIABLE = "SLURM_ARRAY_TASK_ID"
# DataConfig fields that do not change a byte of the output: left out of the comparison across shards
NOT_SETTINGS = ("inputs", "output_prefix", "workers", "num_shards")


def resolve_shard(config: DataConfig, index: int | None, environ: dict[str, str] | None = None) -> ShardSpec | None:
    """The shard this process makes: ``--shard-index``, else the SLURM array task id when ``num_shards > 1``."""
    environ = dict(os.environ) if environ is None else environ
    if index is None and config.num_shards > 1:
        task = environ.get(ARRAY_TASK_VARIABLE, "")
        if not task.isdigit():
            raise ShardPlanError(f"data.num_shards is {config.num_shards}: give --shard-index I (0.."
                                 f"{config.num_shards - 1}) or run as a SLURM array task; or set"
                                 " data.num_shards=1 (--num-shards 1) for one process")
        index = int(task)
    return None if index is None else ShardSpec(index, config.num_shards)


def shard_config(config: DataConfig, shard: ShardSpec | None) -> DataConfig:
    """The config a shard runs with: its own output prefix; refused for what only a whole run can do."""
    if shard is None:
        return config
    if config.valid_count:
        raise ShardPlanError("--valid-count needs every record counted before any is written, which a shard"
                             " cannot do; with --num-shards hold out by --valid-fraction (decided per record)")
    return dataclasses.replace(config, output_prefix=shard_prefix(config.output_prefix, shard))


def output_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The settings (a manifest's ``config``) that decide the bytes written: what every shard must share."""
    return {k: v for k, v in config.items() if k not in NOT_SETTINGS}


def shard_manifest_section(config: DataConfig, shard: ShardSpec, paths: list[str], pieces: list[InputPiece],
                           digests: list[str]) -> dict[str, Any]:
    """The ``shard`` section of a shard's manifest (``config`` is the run's, with the final prefix; ``paths`` the
    input files the run planned its pieces over: ``config.inputs`` with language folders expanded)."""
    return {
        "index": shard.index,
        "count": shard.count,
        "output_prefix": config.output_prefix,
        "inputs": input_stats(paths),
        "pieces": [{"path": p.path, "start": p.start, "end": p.end, "sha256": d} for p, d in zip(pieces, digests)],
        "settings": output_settings(dataclasses.asdict(config)),
    }
