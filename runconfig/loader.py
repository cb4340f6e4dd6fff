"""Load one section of a YAML run config into a frozen dataclass, strictly.

Every stage reads its own section (``data:``, ``splits:``, ``training:``, ``conversion:`` ...) of the one
run config. Unknown keys are errors naming the key and the section, values are coerced to the field's
type, and ``key=value`` overrides from the command line are applied before validation::

    cfg = load_section("scripts/configs/demo.yaml", "data", DataConfig, ["data.workers=4"])

Overrides are written ``section.key=value`` (or ``key=value`` when only one section is loaded); the
value is parsed as YAML, so ``workers=4``, ``append_eod=true`` and ``keys=[inputs,targets]`` work.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Mapping, Sequence, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A run config that cannot be used; the message says where and how to fix it."""


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Parse a run config file into a mapping of sections (an empty file is an empty config)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read run config ({exc.strerror})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a run config is a mapping of sections, got {type(data).__name__}")
    return data


def parse_overrides(overrides: Sequence[str], section: str) -> dict[str, Any]:
    """Turn ``section.key=value`` / ``key=value`` strings into a mapping for ``section``."""
    result: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value (e.g. {section}.seed=1)")
        dotted, raw = item.split("=", 1)
        if "." in dotted:
            owner, key = dotted.split(".", 1)
            if owner != section:
                continue  # belongs to another stage's section
        else:
            key = dotted
        try:
            result[key] = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: value is not valid YAML: {exc}") from exc
    return result


def build_dataclass(cls: type[T], values: Mapping[str, Any], where: str) -> T:
    """Instantiate frozen dataclass ``cls`` from ``values``, rejecting unknown keys and wrong types."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where}: expected a mapping of keys, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r} in section {where.split(':')[-1]!r}"
            f" (known keys: {', '.join(sorted(fields))})"
        )
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        kwargs[name] = _coerce(value, hints[name], f"{where}.{name}")
    missing = [
        n for n, f in fields.items()
        if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{where}: required key {missing[0]!r} is missing")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def load_section(
    path: str | Path | None, section: str, cls: type[T], overrides: Sequence[str] = ()
) -> T:
    """Read ``section`` of the run config at ``path`` (None: defaults only) with overrides applied."""
    sections = read_yaml(path) if path is not None else {}
    values = dict(sections.get(section) or {})
    merge_overrides(values, parse_overrides(overrides, section))
    return build_dataclass(cls, values, f"{path or '<defaults>'}:{section}")


def merge_overrides(values: dict[str, Any], overrides: Mapping[str, Any]) -> None:
    """Apply overrides; a dotted key (``lora.rank``, ``pretrain.fim_rate``) sets one key of a nested section."""
    for key, value in overrides.items():
        target = values
        *owners, leaf = key.split(".")
        for owner in owners:
            nested = target.get(owner)
            target[owner] = dict(nested) if isinstance(nested, Mapping) else {}
            target = target[owner]
        target[leaf] = value


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check ``value`` against a type hint, converting the lossless cases (int -> float, list -> tuple)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, option, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0])
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if origin in (tuple, list):
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item_hint = args[0] if args else Any
        return tuple(_coerce(v, item_hint, f"{where}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(hint):
        return build_dataclass(hint, value, where)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        try:  # YAML 1.1 reads "3e-4" (no dot) as a string; users mean a number
            return float(value)
        except ValueError:
            pass
    if hint is bool and not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if hint is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if hint in (str, float) and not isinstance(value, hint):
        raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value
