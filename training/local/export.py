"""A Hugging Face folder of a training run's latest (or named) checkpoint, for any model family.

The code of ``python -m training.export``; how to run it and what it does: the docstring of its entry point
``training/export.py``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

from conversion.checkpoint_format import CheckpointFormatError, read_tracker, tag_dir_name

DEFAULT_SHARD_SIZE = "2GB"


def _start_tokenizer(args: dict[str, Any]) -> Path | None:
    """The start folder (``training.load``) when it holds a tokenizer (the model's own)."""
    start = Path(str(args.get("load") or ""))
    return start if args.get("load") and (start / "tokenizer.json").is_file() else None


def _tokenizer_source(given: str | None, args: dict[str, Any]) -> Path | None:
    """``--tokenizer``, else the start folder's tokenizer files (the model's own, its special tokens named in
    its ``tokenizer_config.json``), else the run's ``training.tokenizer``."""
    if given:
        return Path(given)
    return _start_tokenizer(args) or (Path(args["tokenizer_file"]) if args.get("tokenizer_file") else None)


def _recorded_tokenizer(args: dict[str, Any]) -> Path | None:
    """The tokenizer the run tokenized its data with: its ``training.tokenizer``, else the start folder's."""
    return Path(args["tokenizer_file"]) if args.get("tokenizer_file") else _start_tokenizer(args)


def _check_tokenizer(save: Path, args: dict[str, Any], given: str | None, source: Path | None,
                     vocab_size: int) -> None:
    """Refuse a tokenizer the run was not trained with: another file than the recorded one (when it is here), or
    more tokens than the model has rows; either would pair every id with another token in the exported folder."""
    from conversion.vocab_padding import tokenizer_vocab_size
    from dataset.formats.tokenizer_match import TokenizerMismatchError, check_same_tokenizer

    if given:
        check_same_tokenizer(_recorded_tokenizer(args), given, f"the run {save}")
    if source is not None and (size := tokenizer_vocab_size(source)) > vocab_size:
        raise TokenizerMismatchError(f"the tokenizer {source} has {size} tokens, but the model of {save} has"
                                     f" {vocab_size} rows: it is not the run's tokenizer; give the one it trained"
                                     " with (training.tokenizer)")


def export_hf_family(save: Path, folder: Path, out: Path, tokenizer: str | None, dtype: torch.dtype,
                     max_shard_size: str) -> Path:
    """Write the Hugging Face folder ``out`` of the iteration folder ``folder`` (not the fork's layout)."""
    from transformers import AutoConfig, GenerationConfig

    from conversion.hf_checkpoint_writer import ShardedWeightWriter
    from conversion.output_kinds import hf_model_kind
    from conversion.tokenizer_files import write_tokenizer_files
    from guardrails.atomic_folder import atomic_output_dir
    from guardrails.output_paths import claim_folder
    from guardrails.output_records import write_record
    from training.local.hf_family.checkpoint import full_weights, read_train_state

    kind = hf_model_kind("training.export")
    claim_folder(out, kind, "--out", inputs=[save])
    state = read_train_state(folder)
    config = AutoConfig.from_pretrained(str(folder))
    source = _tokenizer_source(tokenizer, state.get("args") or {})
    _check_tokenizer(save, state.get("args") or {}, tokenizer, source, int(config.vocab_size))
    weights = full_weights(folder, state)
    if getattr(config, "tie_word_embeddings", False):
        weights.pop("lm_head.weight", None)  # the tied head is the input embedding (save_pretrained's rule)
    config.dtype = dtype
    with atomic_output_dir(out) as tmp:
        writer = ShardedWeightWriter(tmp, {k: tuple(v.shape) for k, v in weights.items()}, dtype, "safetensors",
                                     max_shard_size)
        try:
            for name, tensor in weights.items():  # the order the shards were planned in
                writer.write(name, tensor)
            writer.finish()
        except BaseException:
            writer.abort()
            raise
        config.save_pretrained(str(tmp))
        GenerationConfig(bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id).save_pretrained(str(tmp))
        files = write_tokenizer_files(source, tmp, int(config.max_position_embeddings)) if source else []
        if not files:
            print("training.export: warning: no tokenizer (--tokenizer, training.tokenizer or a tokenizer.json in"
                  " training.load); the folder has no tokenizer files", file=sys.stderr)
        manifest = {"source": str(folder.resolve()), "iteration": state["iteration"], "layout": state["layout"],
                    "model_type": config.model_type, "dtype": str(dtype).removeprefix("torch."),
                    "shards": writer.file_names, "total_bytes": writer.bytes_written, "tokenizer_files": files}
        write_record(tmp / kind.record, kind, tmp, facts=manifest)  # last: it lists every file above
    return out


def export(save: str | Path, out: str | Path, iteration: int | None = None, tokenizer: str | None = None,
           dtype: str = "auto", max_shard_size: str = DEFAULT_SHARD_SIZE) -> Path:
    """Export iteration ``iteration`` (default: the tracker's) of the save folder ``save`` to ``out``;
    ``dtype`` ``auto`` keeps the stored one (float32: the engine's master weights)."""
    from conversion.hf_checkpoint_writer import DTYPES
    from training.local.hf_family.checkpoint import is_hf_family_checkpoint

    save, out = Path(save), Path(out)
    tag = str(iteration) if iteration is not None else read_tracker(save)
    if not tag.isdigit():
        raise CheckpointFormatError(f"{save}: its tracker says {tag!r}; export a training run's save folder"
                                    " (a release checkpoint converts with python -m conversion.megatron_to_hf)")
    folder = save / tag_dir_name(tag)
    if not folder.is_dir():
        raise CheckpointFormatError(f"{folder}: no such checkpoint; pick an iteration the run saved (--iteration)")
    if is_hf_family_checkpoint(folder):
        return export_hf_family(save, folder, out, tokenizer, DTYPES.get(dtype, torch.float32), max_shard_size)
    from conversion.megatron_to_hf import convert

    return convert(save, out, tokenizer=tokenizer, dtype=DTYPES.get(dtype), max_shard_size=max_shard_size, tag=tag,
                   progress=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.export", description=__doc__.split("\n")[0])
    parser.add_argument("--save", required=True, help="the run's save folder (training.save)")
    parser.add_argument("--out", required=True, help="the Hugging Face folder to write (replaced atomically)")
    parser.add_argument("--iteration", type=int, default=None, help="default: the latest (the tracker's)")
    parser.add_argument("--tokenizer", default=None, help="tokenizer.json or a tokenizer folder (default: the run's)")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                        help="default auto: as stored (float32)")
    parser.add_argument("--max-shard-size", default=DEFAULT_SHARD_SIZE, help="e.g. 2GB, 500MB")
    args = parser.parse_args(argv)
    try:
        out = export(args.save, args.out, args.iteration, args.tokenizer, args.dtype, args.max_shard_size)
    except ValueError as exc:  # CheckpointFormatError, refused outputs; OSErrors: guardrails.command_errors
        print(f"training.export: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0
