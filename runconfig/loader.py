"""Load one section of a YAML run config into a frozen dataclass, strictly.

Every stage reads its own section (``data:``, ``splits:``, ``training:``, ``conversion:`` ...) of the one
run config. Unknown keys are errors naming the key and the section, values are coerced to the field's
type, and ``key=value`` overrides from the command line are applied before validation::

    cfg = load_section("scripts/configs/demo.yaml", "data", DataConfig, ["data.workers=4"])

Overrides are written ``section.key=value`` (or ``key=value`` when only one section is loaded); the
value is parsed as YAML, so ``workers=4``, ``append_eod=true`` and ``keys=[inputs,targets]`` work.
A key written twice in one mapping is an error naming the file and line (plain YAML keeps the last).
Commands read a section through :func:`runconfig.run_config.load_section`, which first checks the whole
file (every section known and valid), so a mistake anywhere in the config stops every command before work.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Mapping, Sequence, TypeVar

import yaml

from runconfig.value_rules import value_problem

T = TypeVar("T")


class ConfigError(ValueError):
    """A run config that cannot be used; the message says where and how to fix it."""


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key written twice in one mapping (SafeLoader keeps the last)."""

    source = "<string>"  # set per document: the file named in errors

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # "<<: *anchor" merges on purpose
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ConfigError(f"{self.source}:{line}: key {key!r} is written twice in one mapping (first at line"
                                  f" {seen[key]}); YAML would keep only the last, so remove one")
            seen[key] = line
        return super().construct_mapping(node, deep)


def read_yaml_lines(path: str | Path) -> tuple[dict[str, Any], dict[tuple[str, ...], int]]:
    """The run config at ``path`` as a mapping of sections, and the line of every section and key in one.

    Lines are keyed ``(section,)`` and ``(section, key)``. An empty file is an empty config.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read run config ({exc.strerror})") from exc
    loader = _StrictLoader(text)
    loader.source = str(path)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    finally:
        loader.dispose()
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a run config is a mapping of sections, got {type(data).__name__}")
    lines: dict[tuple[str, ...], int] = {}
    _record_lines(node, (), lines)
    return data, lines


def _record_lines(node: yaml.Node, owners: tuple[str, ...], lines: dict[tuple[str, ...], int]) -> None:
    """The line of every key of a mapping, nested mappings (``training: lora: rank:``) included."""
    if not isinstance(node, yaml.MappingNode):
        return
    for key_node, value_node in node.value:
        key = (*owners, str(key_node.value))
        lines[key] = key_node.start_mark.line + 1
        _record_lines(value_node, key, lines)


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


def build_dataclass(cls: type[T], values: Mapping[str, Any], where: str,
                    lines: Mapping[str, str] | None = None) -> T:
    """Instantiate frozen dataclass ``cls`` from ``values``, rejecting unknown keys and wrong types.

    ``where`` is ``FILE:SECTION``; ``lines`` maps a key (``""``: the section; ``lora.rank``: a key of a nested
    section) to ``FILE:LINE`` for errors.
    """
    lines = lines or {}
    section = where.split(":")[-1]
    if not isinstance(values, Mapping):
        raise ConfigError(f"{lines.get('', where)}: section {section!r} must be a mapping of keys"
                          f" (key: value lines indented below it), got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields), key=str)
    if unknown:
        raise ConfigError(
            f"{lines.get(unknown[0], where)}: unknown key {unknown[0]!r} in section {section!r}"
            f" (known keys: {', '.join(sorted(fields))})"
        )
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        at = f"{lines[name]}: {section}.{name}" if name in lines else f"{where}.{name}"
        if dataclasses.is_dataclass(hints[name]) and isinstance(value, Mapping):  # a nested section: its own lines
            inner = {key.split(".", 1)[1]: line for key, line in lines.items() if key.startswith(f"{name}.")}
            inner.update({"": lines[name]} if name in lines else {})
            kwargs[name] = build_dataclass(hints[name], value, f"{where}.{name}", inner)
            continue
        kwargs[name] = _coerce(value, hints[name], at)
        problem = value_problem(cls.__name__, name, kwargs[name])  # the key's own line, before anything runs
        if problem:
            raise ConfigError(f"{at}: {problem}")
    missing = [
        n for n, f in fields.items()
        if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{where}: required key {missing[0]!r} is missing")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{lines[''] + ': ' + section if '' in lines else where}: {exc}") from exc


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
