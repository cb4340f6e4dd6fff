"""The starting model of the local engine: a tiny random GPT-BigCode, or weights from a release / HF folder.

The code of ``python -m training.model_init``; how to run it and what it does: the docstring of its entry point
``training/model_init.py``.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import GPTBigCodeConfig, GPTBigCodeForCausalLM

from conversion.checkpoint_format import TRACKER_NAME
from conversion.vocab_padding import DEFAULT_DIVISIBLE_BY, TRUE_VOCAB_ARG, padded_vocab_size
from dataset.formats.text_tokenizer import EOD_TOKEN
from guardrails.atomic_folder import atomic_output_dir
from guardrails.output_paths import OutputRefused, claim_folder
from guardrails.output_records import write_record
from runconfig.value_rules import POSITIVE, SEED, Bound, check_flags
from training.local.hf_family.tiny_models import TINY_FAMILIES

PAD_TOKENS = ("<fim-pad>", "<fim_pad>")  # the order the fork tries them
# a model of zero layers, width or heads cannot be built (or trains nothing): refused with the flag
FLAG_BOUNDS = {"layers": POSITIVE, "hidden": POSITIVE, "heads": POSITIVE, "ffn_hidden": Bound(low=0, note="0 = 4 x hidden"),
               "max_positions": POSITIVE, "dropout": Bound(low=0, high=1, high_open=True), "seed": SEED}


@dataclass(frozen=True)
class TinyModelSpec:
    layers: int = 2
    hidden: int = 64
    heads: int = 4
    ffn_hidden: int = 0  # 0 = 4 x hidden
    max_positions: int = 512
    dropout: float = 0.1
    seed: int = 1234


def tokenizer_ids(tokenizer_json: Path) -> dict[str, int | None]:
    """vocab size and the EOD / pad ids of a ``tokenizer.json`` (pad as the fork looks it up)."""
    from tokenizers import Tokenizer

    try:
        tok = Tokenizer.from_file(str(tokenizer_json))
    except Exception as exc:  # tokenizers raises a bare Exception for unreadable files
        raise ValueError(f"{tokenizer_json}: not a readable tokenizer.json ({exc})") from exc
    pad = next((tok.token_to_id(t) for t in PAD_TOKENS if tok.token_to_id(t) is not None), None)
    return {"vocab_size": tok.get_vocab_size(), "eod": tok.token_to_id(EOD_TOKEN), "pad": pad}


def tiny_config(vocab_size: int, eod_id: int | None, pad_id: int | None, spec: TinyModelSpec) -> GPTBigCodeConfig:
    padded = padded_vocab_size(vocab_size, DEFAULT_DIVISIBLE_BY, 1)  # the fork's padding, so TP=1 adds none
    return GPTBigCodeConfig(
        vocab_size=padded,
        n_positions=spec.max_positions,
        n_embd=spec.hidden,
        n_layer=spec.layers,
        n_head=spec.heads,
        n_inner=spec.ffn_hidden or 4 * spec.hidden,
        activation_function="gelu_pytorch_tanh",
        multi_query=True,
        resid_pdrop=spec.dropout,
        embd_pdrop=spec.dropout,
        attn_pdrop=spec.dropout,
        bos_token_id=eod_id if eod_id is not None else 0,
        eos_token_id=eod_id if eod_id is not None else 0,
        pad_token_id=pad_id,
        tie_word_embeddings=True,
    )


def random_model(config: GPTBigCodeConfig, seed: int) -> GPTBigCodeForCausalLM:
    torch.manual_seed(seed)
    model = GPTBigCodeForCausalLM(config)
    model.config._attn_implementation = "sdpa"
    return model


def plain_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """HF GPT-BigCode weights, detached on CPU; the tied head is left out (it is the embedding)."""
    return {
        k: v.detach().to("cpu") for k, v in model.state_dict().items() if k != "lm_head.weight"
    }


def write_tiny_release(
    tokenizer_json: Path, out_dir: Path, spec: TinyModelSpec, hf_out: Path | None = None
) -> GPTBigCodeForCausalLM:
    """Create a tiny random GPT-BigCode, save it as a Megatron release checkpoint (and an HF folder), return it."""
    from conversion.megatron_checkpoint import write_megatron_checkpoint

    from conversion.output_kinds import hf_model_kind, release_root_kind

    release_kind, hf_kind = release_root_kind("training.model_init"), hf_model_kind("training.model_init")
    claim_folder(out_dir, release_kind, "--out", inputs=[tokenizer_json])
    if hf_out is not None:
        if Path(hf_out).resolve() == Path(out_dir).resolve():
            raise OutputRefused(f"--hf-out {hf_out}: the same folder as --out; give the HF folder another path")
        claim_folder(hf_out, hf_kind, "--hf-out", inputs=[tokenizer_json, out_dir])
    ids = tokenizer_ids(tokenizer_json)
    config = tiny_config(ids["vocab_size"], ids["eod"], ids["pad"], spec)
    model = random_model(config, spec.seed)
    # recording the tokenizer lets conversion find it later without --tokenizer (the fork records it too); the
    # real vocab is the tokenizer's, not the padded embedding's, so that every export of this model (and of the
    # runs that start from it, in either engine) keeps the tokenizer's rows, as hf_to_megatron's releases do
    with atomic_output_dir(out_dir) as tmp:
        write_megatron_checkpoint(tmp, None, plain_state_dict(model), config,
                                  extra_args={"tokenizer_file": str(Path(tokenizer_json).resolve()),
                                              TRUE_VOCAB_ARG: ids["vocab_size"]})
        write_record(tmp / release_kind.record, release_kind, tmp, facts={"model": "tiny random GPT-BigCode"})
    if hf_out is not None:
        from conversion.tokenizer_files import write_tokenizer_files

        with atomic_output_dir(hf_out) as tmp:
            model.save_pretrained(str(tmp))
            # with the tokenizer beside the weights, AutoTokenizer.from_pretrained(hf_out) works as for an export
            write_tokenizer_files(tokenizer_json, Path(tmp), config.n_positions)
            write_record(tmp / hf_kind.record, hf_kind, tmp, facts={"model": "tiny random GPT-BigCode"})
    return model


def write_tiny_hf_model(tokenizer_json: Path, out_dir: Path, family: str, spec: TinyModelSpec) -> torch.nn.Module:
    """A tiny random model of ``family`` (not GPT-BigCode) saved as a Hugging Face folder with the tokenizer."""
    from conversion.output_kinds import hf_model_kind
    from conversion.tokenizer_files import write_tokenizer_files
    from training.local.hf_family.tiny_models import random_hf_model, tiny_hf_config

    kind = hf_model_kind("training.model_init")
    claim_folder(out_dir, kind, "--out", inputs=[tokenizer_json])
    ids = tokenizer_ids(tokenizer_json)
    padded = padded_vocab_size(ids["vocab_size"], DEFAULT_DIVISIBLE_BY, 1)  # as the GPT-BigCode tiny models
    model = random_hf_model(tiny_hf_config(family, padded, ids["eod"], ids["pad"], spec), spec.seed)
    with atomic_output_dir(out_dir) as tmp:
        model.save_pretrained(str(tmp))
        write_tokenizer_files(tokenizer_json, Path(tmp), spec.max_positions)
        write_record(tmp / kind.record, kind, tmp, facts={"model": f"tiny random {family}"})
    return model


def load_start_model(path: Path) -> tuple[torch.nn.Module, str]:
    """The starting weights (fp32, CPU, SDPA attention) and a line saying where they came from."""
    path = Path(path)
    if (path / TRACKER_NAME).exists():
        from conversion.checkpoint_format import read_tracker, tag_dir_name
        from conversion.megatron_checkpoint import read_megatron_checkpoint
        from training.local.hf_family.checkpoint import is_hf_family_checkpoint, weights_only

        folder = path / tag_dir_name(read_tracker(path))
        if is_hf_family_checkpoint(folder):  # another run's save folder, in the Hugging Face layout
            model = weights_only(folder)
            return model, f"checkpoint {folder} ({model.config.model_type}): weights only"

        ckpt = read_megatron_checkpoint(path)
        model = model_from_state(ckpt.hf_config, ckpt.hf_state_dict)
        return model, f"Megatron checkpoint {path} (tag {ckpt.tag}): weights only"
    if (path / "config.json").exists():
        from transformers import AutoConfig, AutoModelForCausalLM

        from training.local.hf_family.families import UnsupportedModelError, family_of

        try:
            family_of(AutoConfig.from_pretrained(str(path)))
        except UnsupportedModelError as exc:
            raise UnsupportedModelError(f"{path}/config.json: {exc}") from None
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32, attn_implementation="sdpa")
        return model, f"Hugging Face model {path} ({model.config.model_type}): weights only"
    raise FileNotFoundError(
        f"{path}: neither a Megatron checkpoint ({TRACKER_NAME}) nor a Hugging Face folder (config.json);"
        " set training.load to one, or create a tiny one with python -m training.model_init"
    )


def model_from_state(config: GPTBigCodeConfig, state: dict[str, torch.Tensor]) -> GPTBigCodeForCausalLM:
    """Build a model from a config and an HF state dict, strictly (missing/unexpected keys are errors)."""
    config._attn_implementation = "sdpa"
    with torch.device("meta"):
        model = GPTBigCodeForCausalLM(config)
    state = {k: v.to(torch.float32) for k, v in state.items()}
    state.setdefault("lm_head.weight", state.get("transformer.wte.weight"))
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    if missing or unexpected:
        raise ValueError(f"checkpoint does not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.tie_weights()
    _materialize_buffers(model, config)
    return model


def _materialize_buffers(model: torch.nn.Module, config: GPTBigCodeConfig) -> None:
    """Non-persistent buffers are not in a state dict; rebuild the one GPT-BigCode has (its causal mask)."""
    for name, buffer in list(model.named_buffers()):
        if not buffer.is_meta:
            continue
        if name != "transformer.bias":
            raise ValueError(f"buffer {name} has no value after loading; this transformers version is not supported")
        n = config.n_positions
        model.transformer.register_buffer(
            "bias", torch.tril(torch.ones((n, n), dtype=torch.bool)), persistent=False
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.model_init", description=__doc__.split("\n")[0])
    parser.add_argument("--tokenizer", required=True, type=Path, help="tokenizer.json (vocab size, EOD, pad)")
    parser.add_argument("--out", required=True, type=Path,
                        help="folder for the Megatron release checkpoint (another --family: the Hugging Face folder)")
    parser.add_argument("--family", default="gpt_bigcode", choices=["gpt_bigcode", *TINY_FAMILIES],
                        help="the architecture (default gpt_bigcode, which the fork trains too)")
    parser.add_argument("--hf-out", type=Path, default=None, help="also save a Hugging Face folder here")
    parser.add_argument("--layers", type=int, default=TinyModelSpec.layers)
    parser.add_argument("--hidden", type=int, default=TinyModelSpec.hidden)
    parser.add_argument("--heads", type=int, default=TinyModelSpec.heads)
    parser.add_argument("--ffn-hidden", type=int, default=0)
    parser.add_argument("--max-positions", type=int, default=TinyModelSpec.max_positions)
    parser.add_argument("--dropout", type=float, default=TinyModelSpec.dropout)
    parser.add_argument("--seed", type=int, default=TinyModelSpec.seed)
    args = parser.parse_args(argv)
    spec = TinyModelSpec(args.layers, args.hidden, args.heads, args.ffn_hidden, args.max_positions,
                         args.dropout, args.seed)
    try:
        check_flags(args, FLAG_BOUNDS)  # before anything is claimed or written
        if args.family != "gpt_bigcode":
            if args.hf_out is not None:
                raise ValueError(f"--hf-out: a {args.family} model is written as a Hugging Face folder at --out already")
            model = write_tiny_hf_model(args.tokenizer, args.out, args.family, spec)
            print(json.dumps({"hf": str(args.out), "family": args.family, "params": sum(
                p.numel() for p in model.parameters()), "vocab_size": model.config.vocab_size}))
            return 0
        model = write_tiny_release(args.tokenizer, args.out, spec, args.hf_out)
    except ValueError as exc:  # OSErrors (read-only, full disk) and interrupts: guardrails.command_errors
        print(f"error: {exc}", file=sys.stderr)
        return 2
    n_params = sum(p.numel() for p in model.parameters())
    print(json.dumps({"release": str(args.out), "hf": str(args.hf_out) if args.hf_out else None,
                      "params": n_params, "vocab_size": model.config.vocab_size}))
    return 0
