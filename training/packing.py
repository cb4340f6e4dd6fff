"""Build the fork's packed-MTF index maps for a split file, and say what they hold.

    python -m training.packing --split-file data/train_data_paths.txt --seq-length 2048 --seed 1234 \\
        --num-samples 96000 --cache-dir data/cache [--group NAME] [--legacy-split-offsets] [--report FILE]

``--seq-length`` is the **model's** sequence length (``--seq-length`` of finetune_mtf); rows hold
``seq_length + 1`` tokens because finetune_mtf hands ``args.seq_length + 1`` to the dataset. The fork's
fixtures were built with ``--seq-length 256`` (rows of 257). ``--num-samples`` is the group's total;
for a blended group each dataset gets ``ceil(n * w * 1.005)`` (the fork's rule). Without ``--group`` every
group of the file is built (a valid file may hold several), each for ``--num-samples``.

The maps land in ``--cache-dir`` under the fork's names
(``{prefix-basename}_{group}_indexmap_{N}ns_{S}s_decoder_packed_{batch,shuffle}_idx.npy``), so they can
be copied next to the data for the fork, plus a ``..._key.json`` that keys them by content (they are
rebuilt when the data or a parameter changes). Data prefixes in the split file are resolved relative to
the split file's folder unless absolute. Over-long pairs that the fork skips are counted and printed.
``--legacy-split-offsets`` reproduces the fork's range bug (``0.95:1`` reads the *first* 5%); without
it the documents of the range are read, which only differs for ranges that do not start at 0.
Exit status: 0 on success, 1 on bad input (with the reason).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from guardrails.command_errors import run_command
from guardrails.atomic_files import write_json_atomic
from guardrails.output_paths import claim_file, json_object_with
from runconfig.value_rules import SEED, check_flags
from dataset.packed_index import PackingError
from dataset.split_files import SplitFileError, parse_split_file
from dataset.indexed_dataset import IndexFormatError
from training.packed_dataset import PackingReport, build_packed_dataset


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


# This command builds index maps only; it never reads a row, and the maps do not depend on the pad id.
_ROWS_NOT_READ_PAD_ID = 4


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report is not None:  # refused before any map is built
        claim_file(args.report, "a packing report", json_object_with("row_length", "groups"), "--report")
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
        write_json_atomic(args.report, payload, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_command(main))
