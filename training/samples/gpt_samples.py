"""Write the fork's GPT pretraining samples (with fill-in-the-middle) of one split, and its index maps.

The code of ``python -m training.gpt_samples``; how to run it and what it does: the docstring of its entry point
``training/gpt_samples.py``.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from guardrails.file_set import file_with_record
from guardrails.output_paths import claim_file
from guardrails.output_records import OutputKind
from dataset.splitting.gpt_index import GPTIndexError
from dataset.formats.indexed_dataset import IndexFormatError, index_file_path
from dataset.splitting.memory_budget import check_fits
from dataset.formats.text_tokenizer import TokenizerFileError
from dataset.formats.tokenizer_match import check_data_tokenizer
from runconfig.value_rules import SEED, check_flags
from training.samples.fim import FimSettings, FimTokenError
from training.samples.gpt_dataset import GPTSampleSettings, build_gpt_samples
from training.samples.index_cache import save_npy

SAMPLES = OutputKind("a samples file", "training.gpt_samples")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.gpt_samples", description=__doc__.split("\n")[0])
    p.add_argument("--data-prefix", required=True, help="PREFIX of PREFIX.{bin,idx} (raw documents, EOD appended)")
    p.add_argument("--tokenizer", required=True, help="tokenizer.json the data was tokenized with")
    p.add_argument("--seq-length", type=int, required=True, help="the fork's --seq-length (rows are one longer)")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--num-samples", type=int, required=True, help="items to write (the fork's samples of the split)")
    p.add_argument("--split", default="969,30,1", help="train,valid,test document shares (the fork's --split)")
    p.add_argument("--split-index", type=int, default=0, choices=(0, 1, 2), help="0 train, 1 valid, 2 test")
    p.add_argument("--fim-rate", type=float, default=0.0)
    p.add_argument("--fim-spm-rate", type=float, default=0.5)
    p.add_argument("--fim-split-sample", default=None, help="token to split samples on for FIM, e.g. <filename>")
    p.add_argument("--fragment-fim-rate", type=float, default=0.5)
    p.add_argument("--cache-dir", required=True, help="folder of the index maps")
    p.add_argument("--out", required=True, help="SAMPLES.npy to write")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    inputs = [f"{args.data_prefix}.bin", f"{args.data_prefix}.idx", args.tokenizer]
    claim_file(args.out, SAMPLES, "--out", inputs=inputs)  # refused before any work
    try:
        check_flags(args, {"seed": SEED})  # numpy's RandomState takes 0 .. 2**32 - 1 only
        fim = FimSettings(args.fim_rate, args.fim_spm_rate, args.fim_split_sample, args.fragment_fim_rate)
        settings = GPTSampleSettings(args.data_prefix, args.tokenizer, args.seq_length, args.num_samples,
                                     args.seed, args.split, args.split_index, fim)
        if index_file_path(args.data_prefix).exists():  # (a missing one is named by the build below)
            warning = check_data_tokenizer(args.data_prefix, args.tokenizer)  # another tokenizer: refused
            if warning:
                print(warning, file=sys.stderr)
        # the rows are held in memory whole, then written: refuse what cannot fit before any map is built
        check_fits(f"--out of {args.num_samples} rows of {args.seq_length + 1} int64 tokens",
                   8 * args.num_samples * (args.seq_length + 1), "lower --num-samples or --seq-length")
        built = build_gpt_samples(settings, args.cache_dir)
        rows = np.empty((args.num_samples, args.seq_length + 1), dtype=np.int64)
        for i, row in enumerate(built.samples.rows(args.num_samples)):
            rows[i] = row
    except (ValueError, FimTokenError, GPTIndexError, TokenizerFileError, IndexFormatError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"error: {exc.filename}: no such file; check --data-prefix and --tokenizer", file=sys.stderr)
        return 2
    with file_with_record(args.out, SAMPLES) as handle:  # the rows and their record appear together
        save_npy(handle, rows)
    plan = built.samples.index.plan
    print(f"{built.name}: documents [{built.documents.start}, {built.documents.stop}), "
          f"{plan.tokens_per_epoch} tokens/epoch, {plan.samples_per_epoch} samples/epoch, {plan.epochs} epoch(s)"
          f"{' (last shuffled separately)' if plan.separate_last_epoch else ''}; index maps "
          f"{'built' if built.rebuilt else 'reused'}: {built.files.base}_*_idx.npy; {args.num_samples} rows -> {args.out}")
    return 0
