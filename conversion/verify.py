"""Verify a conversion: shard-by-shard weight equality and logit agreement on code prompts.

    python -m conversion.verify shards A B [--atol X] [--rtol Y] [--across-dtypes] [--json FILE]
        Compare two Hugging Face checkpoints (folders or weight files; .bin or safetensors, sharded or not)
        tensor by tensor with bounded memory. Exact by default (atol = rtol = 0); --across-dtypes compares an
        fp32 and a bf16 export (the fp32 side rounded to bf16) instead of counting the dtype as a mismatch.
    python -m conversion.verify logits --hf A (--hf-b B | --megatron DIR [--tag T]) [--tokenizer T]
            [--prompts FILE] [--device cpu] [--max-abs X] [--min-cosine Y] [--min-top1 Z] [--json FILE]
        Run fixed code prompts through both models (one model in memory at a time) and compare their logits.
        The Megatron side goes through conversion.megatron_to_hf.load_hf_model_from_megatron, its weights
        rounded to the dtype A is stored in (so a bfloat16 conversion is checked against bfloat16 weights).
        Without --tag the Megatron side is the tag A was converted from (A's conversion_manifest.json, when
        it names DIR), else DIR's tracker: ``convert_large.sh ... --tag 250`` checks iteration 250.

Exit status: 0 when everything matches, 1 on a mismatch, 2 on a usage or input error. ``scripts/check_shards.py
A B`` is the same as ``shards A B``.
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import sys
from pathlib import Path
from typing import Any

import torch

from guardrails.command_errors import run_command
from conversion.code_prompts import BUILTIN_PROMPTS, PromptFileError, load_prompts_file
from conversion.hf_checkpoint_reader import CheckpointError, HFCheckpointReader
from conversion.hf_checkpoint_writer import DTYPES
from conversion.logit_compare import (
    LogitThresholds, collect_logits, compare_logits, encode_prompts, format_logit_report, load_token_encoder,
)
from conversion.shard_compare import compare_checkpoints, format_report
from guardrails.file_set import write_json_with_record
from guardrails.output_paths import claim_file
from guardrails.output_records import OutputKind

CONVERSION_MANIFEST = "conversion_manifest.json"  # written by conversion.megatron_to_hf: source and tag

EXIT_MATCH, EXIT_MISMATCH, EXIT_ERROR = 0, 1, 2
REPORT = OutputKind("a verify report", "conversion.verify")


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m conversion.verify", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    shards = commands.add_parser("shards", help="compare two HF checkpoints tensor by tensor")
    shards.add_argument("a", type=Path, help="checkpoint A: a save_pretrained folder or a weights/index file")
    shards.add_argument("b", type=Path, help="checkpoint B (the reference for relative differences)")
    shards.add_argument("--atol", type=_non_negative, default=0.0, help="absolute tolerance (default 0: exact)")
    shards.add_argument("--rtol", type=_non_negative, default=0.0, help="relative tolerance, times |b| (default 0)")
    shards.add_argument("--across-dtypes", action="store_true",
                        help="a dtype difference (fp32 vs bf16 export) is no mismatch: round the more precise side"
                             " to the other's dtype, then compare the values within --atol/--rtol")
    shards.add_argument("--json", type=Path, help="also write the report as JSON to this file")

    logits = commands.add_parser("logits", help="compare the logits of two models on code prompts")
    logits.add_argument("--hf", type=Path, required=True, help="model A: a Hugging Face folder")
    side_b = logits.add_mutually_exclusive_group(required=True)
    side_b.add_argument("--hf-b", type=Path, help="model B: another Hugging Face folder")
    side_b.add_argument("--megatron", type=Path, help="model B: a Megatron checkpoint root (any TP/PP)")
    logits.add_argument("--tag", help="Megatron checkpoint tag: 'release' or an iteration (default: the tracker's)")
    logits.add_argument("--tokenizer", type=Path, help="tokenizer.json or tokenizer folder (default: the --hf folder)")
    logits.add_argument("--prompts", type=Path, help="JSONL file of extra prompts: {\"prompt\": \"...\"} per line")
    logits.add_argument("--no-builtin-prompts", action="store_true", help="use only the --prompts file")
    logits.add_argument("--device", default="cpu", help="torch device for the forward passes (default cpu)")
    logits.add_argument("--dtype", choices=sorted(DTYPES), default="float32", help="model dtype (default float32)")
    logits.add_argument("--max-tokens", type=int, default=256, help="cut prompts to this many tokens (default 256)")
    defaults = LogitThresholds()
    logits.add_argument("--max-abs", type=_non_negative, default=defaults.max_abs,
                        help=f"largest allowed |logit A - logit B| (default {defaults.max_abs:g})")
    logits.add_argument("--min-cosine", type=float, default=defaults.min_cosine,
                        help=f"smallest allowed mean cosine similarity (default {defaults.min_cosine:g})")
    logits.add_argument("--min-top1", type=float, default=defaults.min_top1,
                        help=f"smallest allowed top-1 agreement in [0, 1] (default {defaults.min_top1:g})")
    logits.add_argument("--json", type=Path, help="also write the report as JSON to this file")
    return parser


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float spelled as a string ("inf", "nan"): JSON has no such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write a report as strict JSON and its record, put in place together, never half-written (``path`` was
    claimed by ``main`` before any work)."""
    write_json_with_record(path, REPORT, json_safe(data), indent=2, allow_nan=False)


def _inputs(args: argparse.Namespace) -> list[Path | None]:
    if args.command == "shards":
        return [args.a, args.b]
    return [args.hf, args.hf_b, args.megatron, args.tokenizer, args.prompts]


def run_shards(args: argparse.Namespace) -> int:
    report = compare_checkpoints(args.a, args.b, atol=args.atol, rtol=args.rtol, progress=True,
                                 across_dtypes=args.across_dtypes)
    print(format_report(report))
    if args.json:
        write_json(args.json, report.as_dict())
    return EXIT_MATCH if report.match else EXIT_MISMATCH


def load_hf_model(path: Path, dtype: torch.dtype, device: str) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    if not (path / "config.json").is_file():
        raise CheckpointError(f"{path}: no config.json; expected a Hugging Face save_pretrained folder")
    # Open it first as `verify shards` does: every header and index is checked and a .bin is unpickled only
    # by the safe loader, so a truncated or hostile file gets the same one-line refusal, and transformers
    # never meets it (its own messages advise unsafe loading).
    HFCheckpointReader(path).close()
    return AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype).to(device).eval()


def stored_float_dtype(hf_dir: Path) -> torch.dtype | None:
    """The one floating dtype the HF folder's weights are stored in (None when mixed or none)."""
    with HFCheckpointReader(hf_dir) as reader:
        dtypes = {reader.info(k).dtype for k in reader.keys() if reader.info(k).dtype.is_floating_point}
    return dtypes.pop() if len(dtypes) == 1 else None


def converted_tag(hf_dir: Path, megatron_dir: Path) -> str | None:
    """The tag (``release`` or an iteration) ``hf_dir`` was converted from, when its conversion manifest says it
    came from ``megatron_dir``; None otherwise (then the tracker's tag is compared, as before).

    Without it ``convert_large.sh ... --tag 250`` would convert iteration 250 and then compare it with the
    tracker's latest iteration, reporting a false MISMATCH.
    """
    try:
        manifest = json.loads((Path(hf_dir) / CONVERSION_MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("source") != str(Path(megatron_dir).resolve()):
        return None
    tag = manifest.get("tag")
    return str(tag) if isinstance(tag, (str, int)) and not isinstance(tag, bool) else None


def load_megatron_model(path: Path, weights_dtype: torch.dtype, dtype: torch.dtype, device: str,
                        tag: str | None = None) -> torch.nn.Module:
    """The Megatron checkpoint as an HF model, its weights rounded to ``weights_dtype``, computing in ``dtype``."""
    # Imported here: the Megatron reader is only needed for this side, and pulls in the checkpoint formats.
    from conversion.megatron_to_hf import load_hf_model_from_megatron

    return load_hf_model_from_megatron(path, weights_dtype, tag=tag).to(device=device, dtype=dtype).eval()


def run_logits(args: argparse.Namespace) -> int:
    prompts = [] if args.no_builtin_prompts else list(BUILTIN_PROMPTS)
    if args.prompts:
        prompts += load_prompts_file(args.prompts)
    if not prompts:
        raise PromptFileError("no prompts: --no-builtin-prompts needs --prompts FILE")
    encode = load_token_encoder(args.tokenizer or args.hf)
    dtype = DTYPES[args.dtype]
    # One model in memory at a time: a 15B model pair would not fit twice on most machines.
    model_a = load_hf_model(args.hf, dtype, args.device)
    max_tokens = min(args.max_tokens, getattr(model_a.config, "n_positions", args.max_tokens))
    encoded = encode_prompts(prompts, encode, model_a.config.vocab_size, max_tokens)
    logits_a = collect_logits(model_a, encoded, args.device)
    del model_a
    gc.collect()
    notes = []
    if args.megatron is not None:
        # A bf16/fp16 conversion rounds the weights once; round the Megatron side the same way so that the
        # check measures the conversion, not the precision the user chose for the output.
        weights_dtype = stored_float_dtype(args.hf) or dtype
        if weights_dtype != dtype:
            notes.append(f"Megatron weights rounded to {weights_dtype} as stored in {args.hf}, computed in {dtype}")
        tag = args.tag or converted_tag(args.hf, args.megatron)
        if tag is not None and args.tag is None:
            notes.append(f"Megatron tag {tag}: the one {args.hf} was converted from ({CONVERSION_MANIFEST})")
        model_b = load_megatron_model(args.megatron, weights_dtype, dtype, args.device, tag)
        label_b = f"megatron:{args.megatron}"
    else:
        model_b, label_b = load_hf_model(args.hf_b, dtype, args.device), f"hf:{args.hf_b}"
    logits_b = collect_logits(model_b, encoded, args.device)
    del model_b
    thresholds = LogitThresholds(args.max_abs, args.min_cosine, args.min_top1)
    report = compare_logits(encoded, logits_a, logits_b, thresholds, label_a=f"hf:{args.hf}", label_b=label_b)
    report.notes[:0] = notes
    print(format_logit_report(report))
    if args.json:
        write_json(args.json, report.as_dict())
    return EXIT_MATCH if report.match else EXIT_MISMATCH


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 for --help
        return int(exc.code or 0)
    try:
        if args.json is not None:  # refused before any work
            claim_file(args.json, REPORT, "--json", inputs=_inputs(args))
        return run_shards(args) if args.command == "shards" else run_logits(args)
    except (CheckpointError, PromptFileError, FileNotFoundError, ValueError) as exc:  # other OSErrors: run_command
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    raise SystemExit(run_command(main))
