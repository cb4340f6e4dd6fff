"""Write, check and plan the fork's weighted split files (``--train/valid-weighted-split-paths-path``).

The code of ``python -m dataset.splits``; how to run it and what it does: the docstring of its entry point
``dataset/splits.py``.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from guardrails.file_set import write_json_with_record
from guardrails.output_paths import claim_file
from guardrails.output_records import OutputKind
from dataset.splitting.gpt_index import GPTIndexError
from dataset.splitting.gpt_split_planner import format_gpt_plan, is_raw_document_prefix, plan_gpt_data
from dataset.formats.indexed_dataset import IndexFormatError, index_file_path
from dataset.splitting.packed_index import PackingError
from dataset.formats.preprocess_outputs import ROLES as DOCUMENT_ROLES, document_prefix
from dataset.splitting.split_files import (
    ROLES, SplitFileError, SplitGroup, format_split_line, parse_split_entry, parse_split_file,
    claim_split_file, resolve_prefix, write_split_file,
)
from dataset.splitting.split_planner import PlanSettings, format_plan, plan_splits
from runconfig import ConfigError, load_section
from runconfig.splits_section import SplitsConfig
from runconfig.training_section import TrainingConfig

SPLIT_FILE_NAMES = {"train": "train_data_paths.txt", "valid": "valid_data_paths.txt"}
PLAN_FILE_NAME = "split_plan.json"
SPLIT_PLAN = OutputKind("a split plan", "dataset.splits plan")


def claim_plan(out: Path, inputs: list[Path | None]) -> Path:
    """Refuse, before planning, a plan path that is not missing or provably an earlier plan's."""
    return claim_file(out, SPLIT_PLAN, "--json", inputs=inputs)


def write_plan(out: Path, plan: dict) -> None:
    write_json_with_record(out, SPLIT_PLAN, plan, indent=1)
    print(f"plan saved to {out}")
# the training: keys (and plan flags) the planner reads: PlanSettings' fields, a subset of TrainingConfig's
PLAN_KEYS = tuple(f.name for f in dataclasses.fields(PlanSettings))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dataset.splits", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    write = commands.add_parser("write", help="write a split file")
    write.add_argument("--out", type=Path, help="split file to write")
    write.add_argument("--name", help="name of the first group (train, valid, ...)")
    write.add_argument("entries", nargs="*", help='datasets of that group, each "WEIGHT START:END PREFIX"')
    write.add_argument("--group", nargs="+", action="append", default=[], metavar="NAME_THEN_ENTRIES",
                       help="a further group: its name then its entries")
    write.add_argument("--config", type=Path, help="write train/valid files from the run config's splits:")
    write.add_argument("--keep-relative", action="store_true",
                       help="write relative prefixes as given (default: made absolute, next to the split file)")
    check = commands.add_parser("check", help="exit 0 when the fork would accept the split file")
    check.add_argument("file", type=Path)
    check.add_argument("--role", choices=ROLES, help="train files take exactly one group")
    check.add_argument("--check-files", action="store_true", help="also require every prefix's index files")
    plan = commands.add_parser("plan", help="documents, tokens, packed rows and epochs per dataset")
    plan.add_argument("--config", type=Path, help="read the run config's splits: section")
    plan.add_argument("--train", type=Path, help="train split file")
    plan.add_argument("--valid", type=Path, action="append", default=[], help="valid split file(s)")
    for flag, kind in (("--seq-length", int), ("--train-iters", int), ("--global-batch-size", int),
                       ("--eval-interval", int), ("--eval-iters", int), ("--seed", int)):
        plan.add_argument(flag, type=kind, default=None)
    plan.add_argument("--legacy-split-offsets", action="store_true", default=None)
    plan.add_argument("--data-path", type=Path, help="raw-document dataset PREFIX (pretraining, with --split)")
    plan.add_argument("--split", default="969,30,1", help="with --data-path: train,valid,test document shares")
    plan.add_argument("--json", type=Path, help="where to save the plan (default: next to the train file)")
    plan.add_argument("overrides", nargs="*", default=[],
                      help="splits.key=value / training.key=value overrides for --config")
    return parser


def _groups_from_args(args: argparse.Namespace) -> list[SplitGroup]:
    specs = ([[args.name, *args.entries]] if args.name else []) + list(args.group)
    if not specs or any(len(spec) < 2 for spec in specs):
        raise SplitFileError('give --name NAME and at least one "WEIGHT START:END PREFIX" entry per group')
    if not args.name and args.entries:
        raise SplitFileError("entries given without --name NAME")
    groups = []
    for name, *entries in specs:
        datasets = [parse_split_entry(e, f"group {name!r}, dataset {i}") for i, e in enumerate(entries, 1)]
        groups.append(SplitGroup(name, tuple(datasets)))
    return groups


def _config_groups(config: SplitsConfig) -> dict[str, SplitGroup]:
    groups = {}
    for role in ("train", "valid"):
        entries = getattr(config, role)
        if entries:
            datasets = [parse_split_entry(e, f"splits.{role}[{i}]") for i, e in enumerate(entries)]
            groups[role] = SplitGroup(role, tuple(datasets))
    return groups


def absolute_groups(groups: list[SplitGroup], split_file: Path) -> list[SplitGroup]:
    """``groups`` with every relative prefix made absolute, resolved as this toolkit resolves it (next to the split
    file): the fork opens a relative prefix from the job's working folder, which is rarely the split file's."""
    def absolute(d: Any) -> Any:
        return dataclasses.replace(d, prefix=str(resolve_prefix(d.prefix, split_file)))

    return [dataclasses.replace(g, datasets=tuple(absolute(d) for d in g.datasets)) for g in groups]


def _write(path: Path, groups: list[SplitGroup], keep_relative: bool) -> None:
    try:
        groups = groups if keep_relative else absolute_groups(groups, path)
    except SplitFileError as exc:  # the split format cannot hold whitespace, and the absolute path has some
        raise SplitFileError(f"{exc}; move the data to a folder without spaces, or write the prefixes as given with"
                             " --keep-relative (the fork then opens them from the job's working folder)") from None
    written = write_split_file(path, groups)
    print(f"{written}: {format_split_line(groups)}", end="")


def command_write(args: argparse.Namespace) -> int:
    if args.config is not None:
        # with --config the positional words are splits.key=value overrides
        config = load_section(args.config, "splits", SplitsConfig, args.entries)
        if not config.out_dir:
            raise SplitFileError(f"{args.config}: splits.out_dir is empty; say where the split files go")
        groups = _config_groups(config)
        for role in groups:  # both refused before either is written
            claim_split_file(Path(config.out_dir) / SPLIT_FILE_NAMES[role])
        for role, group in groups.items():
            _write(Path(config.out_dir) / SPLIT_FILE_NAMES[role], [group], args.keep_relative)
        return 0
    if args.out is None:
        raise SplitFileError("write needs --out FILE (or --config RUN.yaml)")
    _write(args.out, _groups_from_args(args), args.keep_relative)
    return 0


def command_check(args: argparse.Namespace) -> int:
    groups = parse_split_file(args.file, args.role)
    missing = []
    if args.check_files:
        for group in groups:
            for d in group.datasets:
                prefix = resolve_prefix(d.prefix, args.file)
                indexes = ([index_file_path(prefix)] if is_raw_document_prefix(prefix) else
                           [index_file_path(document_prefix(str(prefix), role)) for role in DOCUMENT_ROLES])
                missing += [str(index) for index in indexes if not index.exists()]
    if missing:
        print(f"{args.file}: missing index file(s): {', '.join(missing)}", file=sys.stderr)
        return 1
    names = [g.name for g in groups]
    print(f"OK {args.file}: {len(groups)} group(s): " + "; ".join(
        f"{g.name}: " + ", ".join(d.entry() for d in g.datasets) for g in groups))
    if len(set(names)) != len(names):
        print("WARNING: repeated group names share index-map file names in the fork", file=sys.stderr)
    if len(groups) > 1 and args.role is None:
        print("note: several groups: only --valid/--test-weighted-split-paths-path accept this file",
              file=sys.stderr)
    return 0


def command_plan(args: argparse.Namespace) -> int:
    flags = {k: getattr(args, k) for k in PLAN_KEYS if getattr(args, k) is not None}
    if args.data_path is not None:
        return command_plan_gpt(args, flags)
    splits: dict[str, list[tuple[SplitGroup, list[Path]]]] = {}
    settings: dict[str, object] = {}
    if args.config is not None:
        config = load_section(args.config, "splits", SplitsConfig, args.overrides)
        training = load_section(args.config, "training", TrainingConfig, args.overrides)
        settings = {k: getattr(training, k) for k in PLAN_KEYS}
        if training.mode == "pretrain":  # the run reads training.pretrain.data_path, not split files
            pretrain = training.pretrain
            if not pretrain.data_path:
                raise SplitFileError(f"{args.config}: training.mode is pretrain but training.pretrain.data_path is empty")
            return command_plan_gpt(args, flags, settings, Path(pretrain.data_path), pretrain.split)
        if not config.train and not config.valid:
            raise SplitFileError(f"{args.config}: no splits.train or splits.valid entries, so nothing to plan; add a"
                                 " splits: section (see scripts/configs/demo.yaml) or give --train/--valid files")
        base = Path(config.out_dir or ".")
        for role, group in _config_groups(config).items():
            split_file = base / SPLIT_FILE_NAMES[role]  # what `write --config` writes; prefixes are relative to it
            splits[role] = [(group, [resolve_prefix(d.prefix, split_file) for d in group.datasets])]
        default_json = base / PLAN_FILE_NAME
    else:
        if "seq_length" not in flags:
            raise SplitFileError("plan needs --seq-length N (the model's sequence length)")
        if args.train is None and not args.valid:
            raise SplitFileError("plan needs --train FILE and/or --valid FILE (or --config RUN.yaml)")
        for role, files in (("train", [args.train] if args.train else []), ("valid", args.valid)):
            for path in files:
                for group in parse_split_file(path, role):
                    splits.setdefault(role, []).append(
                        (group, [resolve_prefix(d.prefix, path) for d in group.datasets]))
        default_json = (args.train or args.valid[0]).resolve().parent / PLAN_FILE_NAME
    out = claim_plan(args.json or default_json, [args.train, *(args.valid or [])])
    try:  # PlanSettings checks the values (positive seq_length, no negative counts), flags included
        plan_settings = PlanSettings(**{**settings, **flags})
    except ValueError as exc:
        raise SplitFileError(f"plan: {exc}") from exc
    plan = plan_splits(splits, plan_settings)
    print(format_plan(plan))
    write_plan(out, plan.to_dict())
    return 0


def command_plan_gpt(args: argparse.Namespace, flags: dict, settings: dict | None = None,
                     data_path: Path | None = None, split: str | None = None) -> int:
    """Plan ``pretrain_gpt.py --data-path P --split S``: from flags, or from the ``training:`` section."""
    if settings is None and (args.config is not None or args.train is not None or args.valid):
        raise SplitFileError("plan --data-path takes --split, not split files or --config")
    if settings is None and "seq_length" not in flags:
        raise SplitFileError("plan needs --seq-length N (the model's sequence length)")
    try:  # PlanSettings checks the values (positive seq_length, no negative counts)
        s = PlanSettings(**{**(settings or {}), **flags})
    except ValueError as exc:
        raise SplitFileError(f"plan: {exc}") from exc
    data_path = data_path or args.data_path
    out = claim_plan(args.json or data_path.resolve().parent / PLAN_FILE_NAME, [])
    plan = plan_gpt_data(data_path, split or args.split, s.seq_length, s.train_iters, s.global_batch_size,
                         s.eval_interval, s.eval_iters)
    print(format_gpt_plan(plan))
    write_plan(out, plan.to_dict())
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = {"write": command_write, "check": command_check, "plan": command_plan}[args.command]
    try:
        return handler(args)
    except (SplitFileError, ConfigError, PackingError, IndexFormatError, FileNotFoundError, GPTIndexError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1 if args.command == "check" else 2  # check: 1 = the fork would not accept it; else a user error
