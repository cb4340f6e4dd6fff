"""The whole run config: every section at once, for commands that span stages (demo, SLURM builder).

    cfg = load_run_config("scripts/configs/demo.yaml", ["training.train_iters=10"])
An unknown section is an error, like an unknown key inside one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from runconfig.cluster_section import ClusterConfig
from runconfig.conversion_section import ConversionConfig
from runconfig.data_section import DataConfig
from runconfig.splits_section import SplitsConfig
from runconfig.loader import ConfigError, build_dataclass, parse_overrides, read_yaml
from runconfig.training_section import TrainingConfig


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    splits: SplitsConfig = field(default_factory=SplitsConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    conversion: ConversionConfig = field(default_factory=ConversionConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)


SECTIONS = {
    "data": DataConfig,
    "splits": SplitsConfig,
    "training": TrainingConfig,
    "conversion": ConversionConfig,
    "cluster": ClusterConfig,
}


def load_run_config(path: str | Path | None, overrides: Sequence[str] = ()) -> RunConfig:
    raw = read_yaml(path) if path is not None else {}
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{path}: unknown section {unknown[0]!r} (known: {', '.join(SECTIONS)})")
    for item in overrides:
        owner = item.split("=", 1)[0].split(".", 1)[0]
        if "." not in item.split("=", 1)[0] or owner not in SECTIONS:
            raise ConfigError(f"override {item!r} must be written section.key=value with a section in {list(SECTIONS)}")
    built = {}
    for name, cls in SECTIONS.items():
        values = dict(raw.get(name) or {})
        values.update(parse_overrides(overrides, name))
        built[name] = build_dataclass(cls, values, f"{path or '<defaults>'}:{name}")
    return RunConfig(**built)
