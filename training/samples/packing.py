"""Build the fork's packed-MTF index maps for a split file, and say what they hold.

The code of ``python -m training.packing``; how to run it and what it does: the docstring of its entry point
``training/packing.py``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from guardrails.file_set import write_json_with_record
from guardrails.output_paths import claim_file
from guardrails.output_records import OutputKind
from runconfig.value_rules import SEED, check_flags
from dataset.splitting.packed_index import PackingError
from dataset.splitting.split_files import SplitFileError, parse_split_file
from dataset.formats.indexed_dataset import IndexFormatError
from training.samples.packed_dataset import PackingReport, build_packed_dataset


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training.packing", description=__doc__.split("\n")[0])
    parser.add_argument("--split-file", type=Path, required=True, help="weighted split file (the fork's format)")
    parser.add_argument("--group", default=None, help="group to build (default: every group of the file)")
    parser.add_argument("--seq-length", type=int, required=True, help="the model's seq length; rows are N+1")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--num-samples", type=int, required=True, help="samples for the group (blended: total)")
    parser.add_argument("--cache-dir", type=Path, required=True)
    parser.add_argument("--legacy-split-offsets", action="store_true", help="reproduce the fork's range bug")
    parser.add_argument("--report", type=Path, default=None, help="also write the report as JSON here")
    args = parser.parse_args(argv)
    if args.seq_length <= 0 or args.num_samples < 0:
        parser.error("--seq-length must be positive and --num-samples not negative")
    try:
        check_flags(args, {"seed": SEED})  # numpy's RandomState takes 0 .. 2**32 - 1 only
    except ValueError as exc:
        parser.error(str(exc))
    return args


REPORT = OutputKind("a packing report", "training.packing")

# This command builds index maps only; it never reads a row, and the maps do not depend on the pad id.
_ROWS_NOT_READ_PAD_ID = 4


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report is not None:  # refused before any map is built
        claim_file(args.report, REPORT, "--report", inputs=[args.split_file])
    reports: list[PackingReport] = []
    try:
        names = [args.group] if args.group else [g.name for g in parse_split_file(args.split_file)]
        for name in names:  # every group of a valid file gets the same num_samples, as in finetune_mtf
            dataset = build_packed_dataset(args.split_file, name, args.num_samples, args.seq_length, args.seed,
                                           args.cache_dir, _ROWS_NOT_READ_PAD_ID, args.legacy_split_offsets)
            reports.append(dataset.report)
    except (SplitFileError, PackingError, IndexFormatError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for report in reports:
        print(report.describe())
        if report.skipped_pairs:
            print(f"WARNING: group {report.group!r}: {report.skipped_pairs} pair(s) longer than {report.row_length}"
                  " tokens were skipped (the fork skips them too); raise --seq-length or shorten them",
                  file=sys.stderr)
    if args.report is not None:
        payload = reports[0].to_dict() if len(reports) == 1 else {"groups": [r.to_dict() for r in reports]}
        write_json_with_record(args.report, REPORT, payload, indent=1)
    return 0
