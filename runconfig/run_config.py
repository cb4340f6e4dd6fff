"""The whole run config: every section at once (demo, SLURM builder), or one stage's section, checked whole.

    cfg = load_run_config("scripts/configs/demo.yaml", ["training.train_iters=10"])
    training = load_section("run.yaml", "training", TrainingConfig, ["training.train_iters=10"])

Both check the whole file before a command does any work: an unknown (misspelled) section, a section that
is not a mapping, a key written twice, and every section's own checks (unknown keys, types, cross-field
rules such as warmup below decay) are errors naming the file and line, even for a command that reads one
section. Overrides of other sections (``data.workers=4`` given to training) are applied to their check.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence, TypeVar

from runconfig.cluster_section import ClusterConfig
from runconfig.conversion_section import ConversionConfig
from runconfig.data_section import DataConfig
from runconfig.splits_section import SplitsConfig
from runconfig.loader import ConfigError, build_dataclass, merge_overrides, parse_overrides, read_yaml_lines
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


T = TypeVar("T")


def load_run_config(path: str | Path | None, overrides: Sequence[str] = ()) -> RunConfig:
    for item in overrides:
        owner = item.split("=", 1)[0].split(".", 1)[0]
        if "." not in item.split("=", 1)[0] or owner not in SECTIONS:
            raise ConfigError(f"override {item!r} must be written section.key=value with a section in {list(SECTIONS)}")
    raw, lines = _read_checked(path)
    return RunConfig(**{name: _build(path, raw, lines, name, cls, overrides) for name, cls in SECTIONS.items()})


def load_section(path: str | Path | None, section: str, cls: type[T], overrides: Sequence[str] = ()) -> T:
    """``section`` of the run config at ``path`` (None: defaults only), overrides applied; the file is checked whole.

    Overrides are ``section.key=value`` or, for ``section`` itself, ``key=value``.
    """
    raw, lines = _read_checked(path)
    result = _build(path, raw, lines, section, cls, overrides)
    check_other_sections(path, raw, lines, section, overrides)
    return result


def read_checked_sections(path: str | Path, overrides: Sequence[str], own: str) -> dict[str, Any]:
    """The raw sections of ``path`` for a command that builds ``own`` itself (merging its flags); every other
    section is checked now, and ``own`` is at least a mapping."""
    raw, lines = _read_checked(path)
    check_other_sections(path, raw, lines, own, overrides)
    return raw


def check_other_sections(path: str | Path | None, raw: dict[str, Any], lines: dict[tuple[str, ...], int],
                         own: str, overrides: Sequence[str]) -> None:
    for name, cls in SECTIONS.items():
        if name != own:
            _build(path, raw, lines, name, cls, [o for o in overrides if o.split("=", 1)[0].startswith(f"{name}.")])


def _read_checked(path: str | Path | None) -> tuple[dict[str, Any], dict[tuple[str, ...], int]]:
    if path is None:
        return {}, {}
    raw, lines = read_yaml_lines(path)
    for name, value in raw.items():
        line = lines.get((str(name),), "?")
        if name not in SECTIONS:
            raise ConfigError(f"{path}:{line}: unknown section {name!r} (known sections:"
                              f" {', '.join(SECTIONS)}); check its spelling")
        if value is not None and not isinstance(value, dict):
            raise ConfigError(f"{path}:{line}: section {name!r} must be a mapping of keys"
                              f" (key: value lines indented below it), got {value!r}")
    return raw, lines


def _build(path: str | Path | None, raw: dict[str, Any], lines: dict[tuple[str, ...], int], name: str,
           cls: type[T], overrides: Sequence[str]) -> T:
    """One section: its file values, then its overrides (those keys lose their file line)."""
    values = dict(raw.get(name) or {})
    given = parse_overrides(overrides, name)
    merge_overrides(values, given)  # a dotted key (lora.rank) sets one key of a nested section
    where = {}
    for key, line in lines.items():  # ("training", "lora", "rank") -> "lora.rank", unless an override set it
        dotted = ".".join(key[1:])
        if len(key) >= 2 and key[0] == name and not any(dotted == g or dotted.startswith(f"{g}.") for g in given):
            where[dotted] = f"{path}:{line}"
    if (name,) in lines:
        where[""] = f"{path}:{lines[(name,)]}"
    label = f"{path or '<defaults>'}:{name}"
    try:
        return build_dataclass(cls, values, label, where)
    except ConfigError:
        # a rule across keys, broken only once the command line's values are in: say so, not the file's line
        if not given or "" not in where or not _builds(cls, dict(raw.get(name) or {}), label, where):
            raise
    # this section's overrides as parse_overrides reads them: section.key=value, or a bare key=value
    mine = [item for item in overrides if (key := item.split("=", 1)[0]).split(".", 1)[0] == name or "." not in key]
    where[""] = f"the command line ({' '.join(mine)}) over {where['']}"
    return build_dataclass(cls, values, label, where)


def _builds(cls: type[T], values: dict[str, Any], label: str, where: dict[str, str]) -> bool:
    try:
        build_dataclass(cls, values, label, where)
    except ConfigError:
        return False
    return True
