"""Write, check and plan the fork's weighted split files (``--train/valid-weighted-split-paths-path``).

    python -m dataset.splits write --out data/train_data_paths.txt --name train "1.0 0:0.95 data/sample"
    python -m dataset.splits write --out data/valid_data_paths.txt --name valid "0.7 0:1 data/a_valid" \\
        "0.3 0:1 data/b_valid" [--group other "1.0 0:1 data/c"]
    python -m dataset.splits write --config run.yaml [splits.key=value ...]    # both files into out_dir
    python -m dataset.splits check data/valid_data_paths.txt [--role train|valid|test] [--check-files]
    python -m dataset.splits plan --train data/train_data_paths.txt --valid data/valid_data_paths.txt \\
        --seq-length 2048 --train-iters 250 --global-batch-size 128 [--eval-interval 50 --eval-iters 2] \\
        [--seed 1234] [--legacy-split-offsets] [--json plan.json]
    python -m dataset.splits plan --config run.yaml [splits.key=value training.key=value ...]
    python -m dataset.splits plan --data-path data/code_content_document --split 969,30,1 --seq-length 2048 \\
        --train-iters 250 --global-batch-size 128 [--eval-interval 50 --eval-iters 2] [--json plan.json]

``write`` prints the exact bytes it wrote; relative prefixes are written absolute (resolved next to the split
file, as this toolkit reads them), because the fork opens them from the job's working folder
(``--keep-relative`` writes them as given). ``check`` exits 0 when the fork accepts the file (its
parser's asserts plus the dataset build's: ``0 <= START < END <= 1``, positive weights) and 1 with
the reason otherwise. ``plan`` prints a table and saves it as JSON (default: ``split_plan.json`` next
to the train split file); ``--seq-length`` is the model's (rows of N+1). Prefixes are resolved relative
to the split file's folder unless absolute (with ``--config``: relative to ``splits.out_dir``). With
``--config`` the run parameters (sequence length, iterations, batch, evaluation, seed) come from the
``training:`` section, where the run that trains reads them.
``plan --data-path`` plans continued pretraining (``pretrain_gpt.py --data-path P --split 969,30,1``):
document ranges, samples per epoch and epochs of each split (``dataset.gpt_split_planner``); a split file
whose prefix is a raw-document dataset (``PREFIX.idx`` exists) is planned the same way, range by range.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from guardrails.command_errors import run_command
from guardrails.atomic_files import write_json_atomic
from guardrails.output_paths import claim_file, json_object_with
from dataset.gpt_index import GPTIndexError
from dataset.gpt_split_planner import format_gpt_plan, is_raw_document_prefix, plan_gpt_data
from dataset.indexed_dataset import IndexFormatError, index_file_path
from dataset.packed_index import PackingError
from dataset.preprocess_outputs import ROLES as DOCUMENT_ROLES, document_prefix
from dataset.split_files import (
    ROLES, SplitFileError, SplitGroup, format_split_line, parse_split_entry, parse_split_file,
    resolve_prefix, write_split_file,
)
from dataset.split_planner import PlanSettings, format_plan, plan_splits
from runconfig import ConfigError, load_section
from runconfig.splits_section import SplitsConfig
from runconfig.training_section import TrainingConfig

SPLIT_FILE_NAMES = {"train": "train_data_paths.txt", "valid": "valid_data_paths.txt"}
PLAN_FILE_NAME = "split_plan.json"
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
        for role, group in _config_groups(config).items():
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
    try:  # PlanSettings checks the values (positive seq_length, no negative counts), flags included
        plan_settings = PlanSettings(**{**settings, **flags})
    except ValueError as exc:
        raise SplitFileError(f"plan: {exc}") from exc
    plan = plan_splits(splits, plan_settings)
    print(format_plan(plan))
    out = args.json or default_json
    write_json_atomic(claim_file(out, "a split plan", json_object_with("row_length"), "--json"), plan.to_dict(), indent=1)
    print(f"plan saved to {out}")
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
    plan = plan_gpt_data(data_path, split or args.split, s.seq_length, s.train_iters, s.global_batch_size,
                         s.eval_interval, s.eval_iters)
    print(format_gpt_plan(plan))
    out = args.json or data_path.resolve().parent / PLAN_FILE_NAME
    write_json_atomic(out, plan.to_dict(), indent=1)
    print(f"plan saved to {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = {"write": command_write, "check": command_check, "plan": command_plan}[args.command]
    try:
        return handler(args)
    except (SplitFileError, ConfigError, PackingError, IndexFormatError, FileNotFoundError, GPTIndexError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(run_command(main))
