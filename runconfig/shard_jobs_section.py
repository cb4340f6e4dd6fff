"""SLURM settings of a sharded preprocess (read by ``dataset.launch``) from the run config's ``cluster:`` section.

PROVISIONAL SHAPE (issue 12, waiting on issue 9): the ``cluster:`` section belongs to the cluster launcher
(``training.launch``, issue 9), which reads it strictly into its own dataclass. Until that lands, this
module reads only the keys below from ``cluster:`` and leaves the others (``nodes``, ``gpus_per_node``...)
to their owner; once it lands these keys join that dataclass and this module goes. Keys::

    cluster:
      partition: cpu            # shared with the GPU job (sbatch --partition), "" = the site default
      account: myproject        # sbatch --account, "" = none
      preprocess_cpus_per_task: 16   # one shard task: tokenizer workers = these CPUs
      preprocess_mem: 32G
      preprocess_time: "12:00:00"
      preprocess_max_parallel: 0     # at most this many shards at once (--array=...%K); 0 = no limit
      merge_mem: 4G
      merge_time: "04:00:00"
      python: ""                # the interpreter on the nodes; "" = the one running dataset.launch
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from runconfig.loader import ConfigError, build_dataclass, parse_overrides, read_yaml

SECTION = "cluster"
_TIME = re.compile(r"^(\d+-)?\d+(:\d\d){0,2}$")  # SLURM's MM, MM:SS, HH:MM:SS, D-HH[:MM[:SS]]
_MEM = re.compile(r"^\d+[KMGT]?$")


@dataclass(frozen=True)
class ShardJobsConfig:
    partition: str = ""
    account: str = ""
    preprocess_cpus_per_task: int = 8
    preprocess_mem: str = "32G"
    preprocess_time: str = "12:00:00"
    preprocess_max_parallel: int = 0
    merge_mem: str = "4G"
    merge_time: str = "04:00:00"
    python: str = ""

    def __post_init__(self) -> None:
        if self.preprocess_cpus_per_task < 1 or self.preprocess_max_parallel < 0:
            raise ValueError("preprocess_cpus_per_task must be at least 1 and preprocess_max_parallel not negative")
        for name in ("preprocess_time", "merge_time"):
            if not _TIME.match(getattr(self, name)):
                raise ValueError(f"{name} {getattr(self, name)!r} is not a SLURM time (e.g. 12:00:00 or 1-00:00:00)")
        for name in ("preprocess_mem", "merge_mem"):
            if not _MEM.match(getattr(self, name)):
                raise ValueError(f"{name} {getattr(self, name)!r} is not a SLURM memory size (e.g. 32G)")


def load_shard_jobs(path: str | Path | None, overrides: Sequence[str] = ()) -> ShardJobsConfig:
    """The keys above from ``cluster:`` (and ``cluster.key=value`` overrides); other cluster keys are ignored."""
    sections = read_yaml(path) if path is not None else {}
    raw = sections.get(SECTION) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}:{SECTION}: expected a mapping of keys, got {type(raw).__name__}")
    known = {f.name for f in dataclasses.fields(ShardJobsConfig)}
    values = {k: v for k, v in raw.items() if k in known}
    values.update({k: v for k, v in parse_overrides(overrides, SECTION).items() if k in known})
    return build_dataclass(ShardJobsConfig, values, f"{path or '<defaults>'}:{SECTION}")
