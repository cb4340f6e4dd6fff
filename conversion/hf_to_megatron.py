"""Convert a Hugging Face GPT-BigCode checkpoint to a Megatron ``release`` checkpoint at a chosen TP/PP.

    python -m conversion.hf_to_megatron --hf HF_DIR --out CKPT_ROOT [--tp N] [--pp N] [--tokenizer FILE]
        [--make-vocab-size-divisible-by N] [--config run.yaml]

Writes ``CKPT_ROOT/release/mp_rank_*/model_optim_rng.pt`` and the tracker (``release``), the layout the
fork loads with ``--load CKPT_ROOT --finetune``. Tensors are read lazily from the HF shards
(safetensors or ``.bin``, through ``conversion.hf_checkpoint_reader``), so memory holds about one rank's
file. ``--tp``/``--pp``/``--make-vocab-size-divisible-by`` not given come from the run config's
``conversion:`` section. The vocab is padded as the fork pads it (``conversion.vocab_padding``): to a multiple
of ``make_vocab_size_divisible_by x TP`` (128 x TP by default), with zero rows split across the TP ranks;
``args.padded_vocab_size``, ``args.make_vocab_size_divisible_by`` and the real ``args.true_vocab_size`` are
recorded, so the fork loads it with its default flags (or the same ``--make-vocab-size-divisible-by``).
The root appears atomically with ``release_manifest.json`` last (the record of every file written); an existing
``--out`` is replaced only when that record proves it an earlier output of this command (a training run's save
folder, another tool's checkpoint or any other folder is refused: ``conversion.output_kinds``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from guardrails.command_errors import run_command
from conversion.fork_namespace import ForkArgsError
from conversion.hf_checkpoint_reader import HFCheckpointReader
from conversion.megatron_checkpoint import write_megatron_checkpoint
from conversion.vocab_padding import DEFAULT_DIVISIBLE_BY
from conversion.output_kinds import release_root_kind
from guardrails.atomic_folder import atomic_output_dir
from guardrails.output_paths import claim_folder
from guardrails.output_records import write_record

RELEASE_ROOT = release_root_kind("conversion.hf_to_megatron")


def convert(hf_dir: str | Path, out_dir: str | Path, tp: int = 1, pp: int = 1,
            tokenizer: str | Path | None = None, divisible_by: int = DEFAULT_DIVISIBLE_BY) -> Path:
    """Write ``out_dir/release`` (TP x PP shards) and its tracker from the HF checkpoint ``hf_dir``; the vocab
    is padded to a multiple of ``divisible_by x tp``."""
    from transformers import GPTBigCodeConfig

    hf_dir = Path(hf_dir)
    claim_folder(out_dir, RELEASE_ROOT, "--out", inputs=[hf_dir])
    config_path = hf_dir / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path}: missing; is {hf_dir} a Hugging Face model folder?")
    config = GPTBigCodeConfig.from_pretrained(hf_dir)
    if config.model_type != "gpt_bigcode":
        raise ValueError(f"{config_path}: model_type {config.model_type!r}, expected 'gpt_bigcode'")
    extra: dict[str, Any] = {}
    if tokenizer is not None:
        extra["tokenizer_file"] = str(Path(tokenizer).resolve())
    elif (hf_dir / "tokenizer.json").is_file():
        extra["tokenizer_file"] = str((hf_dir / "tokenizer.json").resolve())
    # The reader is a lazy mapping: the writer fetches each tensor when it builds the rank that needs it.
    try:
        with HFCheckpointReader(hf_dir) as tensors, atomic_output_dir(out_dir) as tmp:
            write_megatron_checkpoint(tmp, None, tensors, config, tp=tp, pp=pp, extra_args=extra,
                                      divisible_by=divisible_by)
            write_record(tmp / RELEASE_ROOT.record, RELEASE_ROOT, tmp, facts={
                "source": str(hf_dir.resolve()), "tp": tp, "pp": pp, "make_vocab_size_divisible_by": divisible_by})
        return Path(out_dir) / "release"
    except ForkArgsError as exc:  # a config field with no Megatron equivalent: say which file holds it
        raise ForkArgsError(f"{config_path}: {exc}") from exc


def main(argv: list[str] | None = None) -> int:
    from runconfig import ConfigError, load_section
    from runconfig.conversion_section import ConversionConfig

    parser = argparse.ArgumentParser(prog="python -m conversion.hf_to_megatron", description=__doc__.split("\n")[0])
    parser.add_argument("--hf", required=True, help="Hugging Face GPT-BigCode model folder")
    parser.add_argument("--out", required=True, help="Megatron checkpoint root to write release/ into")
    parser.add_argument("--tp", type=int, help="tensor parallel size")
    parser.add_argument("--pp", type=int, help="pipeline parallel size")
    parser.add_argument("--tokenizer", help="tokenizer.json to record as args.tokenizer_file")
    parser.add_argument("--make-vocab-size-divisible-by", type=int, dest="divisible_by",
                        help="pad the vocab to a multiple of this x TP, as the fork's flag of that name (default 128)")
    parser.add_argument("--config", help="run config YAML; its conversion: section gives the defaults")
    parser.add_argument("overrides", nargs="*", help="conversion.key=value overrides of the run config")
    ns = parser.parse_args(argv)
    try:
        cfg = load_section(ns.config, "conversion", ConversionConfig, ns.overrides)
        tp = ns.tp if ns.tp is not None else cfg.tp
        pp = ns.pp if ns.pp is not None else cfg.pp
        divisible_by = ns.divisible_by if ns.divisible_by is not None else cfg.make_vocab_size_divisible_by
        folder = convert(ns.hf, ns.out, tp=tp, pp=pp, tokenizer=ns.tokenizer, divisible_by=divisible_by)
    except (ConfigError, ValueError, FileNotFoundError, KeyError) as exc:  # other OSErrors: guardrails.command_errors
        print(f"hf_to_megatron: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {folder} (tp={tp} pp={pp}, vocab padded to a multiple of {divisible_by} x {tp})")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_command(main))
