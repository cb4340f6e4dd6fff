"""The starting model of the local engine: a tiny random GPT-BigCode, or weights from a release / HF folder.

A tiny model for the demo and the tests (config from flags, vocabulary from a ``tokenizer.json``) is
written as a Megatron ``release`` checkpoint through ``conversion.megatron_checkpoint`` (and, on
request, as a Hugging Face folder)::

    python -m training.model_init --tokenizer out/demo/data/tokenizer.json --out out/demo/base_release \
        --layers 2 --hidden 64 --heads 4 --max-positions 512 [--hf-out out/demo/base_hf]

An existing ``--out`` must hold only a release checkpoint and an existing ``--hf-out`` only a model folder
(``conversion.output_kinds``); both appear atomically. ``load_start_model(path)`` reads either kind of folder back into a ``GPTBigCodeForCausalLM``: a folder
with ``latest_checkpointed_iteration.txt`` is a Megatron checkpoint (weights only, through the key
maps), a folder with ``config.json`` is a Hugging Face model.
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
from dataset.text_tokenizer import EOD_TOKEN
from guardrails.atomic_folder import atomic_output_dir
from guardrails.command_errors import run_command
from guardrails.output_paths import claim_folder
from runconfig.value_rules import POSITIVE, SEED, Bound, check_flags

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

    from conversion.output_kinds import hf_model_folder_problem, release_root_problem

    claim_folder(out_dir, "a Megatron release checkpoint root", release_root_problem)
    if hf_out is not None:
        claim_folder(hf_out, "a Hugging Face model folder", hf_model_folder_problem, "--hf-out")
    ids = tokenizer_ids(tokenizer_json)
    config = tiny_config(ids["vocab_size"], ids["eod"], ids["pad"], spec)
    model = random_model(config, spec.seed)
    # recording the tokenizer lets conversion find it later without --tokenizer (the fork records it too); the
    # real vocab is the tokenizer's, not the padded embedding's, so that every export of this model (and of the
    # runs that start from it, in either engine) keeps the tokenizer's rows, as hf_to_megatron's releases do
    write_megatron_checkpoint(Path(out_dir), None, plain_state_dict(model), config,
                              extra_args={"tokenizer_file": str(Path(tokenizer_json).resolve()),
                                          TRUE_VOCAB_ARG: ids["vocab_size"]})
    if hf_out is not None:
        from conversion.tokenizer_files import write_tokenizer_files

        with atomic_output_dir(hf_out) as tmp:
            model.save_pretrained(str(tmp))
            # with the tokenizer beside the weights, AutoTokenizer.from_pretrained(hf_out) works as for an export
            write_tokenizer_files(tokenizer_json, Path(tmp), config.n_positions)
    return model


def load_start_model(path: Path) -> tuple[GPTBigCodeForCausalLM, str]:
    """The starting weights (fp32, CPU, SDPA attention) and a line saying where they came from."""
    path = Path(path)
    if (path / TRACKER_NAME).exists():
        from conversion.megatron_checkpoint import read_megatron_checkpoint

        ckpt = read_megatron_checkpoint(path)
        model = model_from_state(ckpt.hf_config, ckpt.hf_state_dict)
        return model, f"Megatron checkpoint {path} (tag {ckpt.tag}): weights only"
    if (path / "config.json").exists():
        model = GPTBigCodeForCausalLM.from_pretrained(str(path), dtype=torch.float32, attn_implementation="sdpa")
        if model.config.model_type != "gpt_bigcode":
            raise ValueError(f"{path}/config.json: model_type {model.config.model_type!r}, expected gpt_bigcode")
        return model, f"Hugging Face model {path}: weights only"
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
    parser.add_argument("--out", required=True, type=Path, help="folder for the Megatron release checkpoint")
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
        model = write_tiny_release(args.tokenizer, args.out, spec, args.hf_out)
    except ValueError as exc:  # OSErrors (read-only, full disk) and interrupts: guardrails.command_errors
        print(f"error: {exc}", file=sys.stderr)
        return 2
    n_params = sum(p.numel() for p in model.parameters())
    print(json.dumps({"release": str(args.out), "hf": str(args.hf_out) if args.hf_out else None,
                      "params": n_params, "vocab_size": model.config.vocab_size}))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_command(main))
