"""Write and read whole Megatron checkpoints (fork layout, any TP/PP) from/to a Hugging Face state dict.

``write_megatron_checkpoint`` splits a GPT-BigCode state dict into the fork's ``release``/``iter_*`` folder
(one rank's file in memory at a time when given a lazy mapping), builds it under a temporary name,
swaps it into place and then updates the tracker. ``read_megatron_checkpoint`` merges every shard back
into one HF state dict plus ``args``, optimizer, scheduler and RNG state: for small models and the local
training engine (large models go through ``conversion.megatron_to_hf``, which streams).

With TP/PP > 1 the optimizer state is stored in rank (0, 0)'s file only (the local engine trains unsplit);
the scheduler and RNG state go into every file, as the fork does. Library module, no command line.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

from guardrails.atomic_folder import atomic_output_dir
from conversion.checkpoint_format import (
    CHECKPOINT_VERSION, MODEL_FILE, load_checkpoint_file, optimizer_file_path, rank_dir_name,
    save_checkpoint_file, tag_dir_name, write_tracker,
)
from conversion.fork_namespace import build_fork_args
from conversion.key_map import (
    EMBEDDING_KEYS, FINAL_NORM_KEYS, HEAD_KEY, HF_LAYER_PREFIX, HF_LAYER_SUFFIXES, HF_TIED_HEAD,
    MEGATRON_LAYER_PREFIX, hf_layer_to_megatron, nest_model, stage_layers,
)
from conversion.megatron_reader import MegatronReader
from conversion.tensor_parallel import tensor_piece
from conversion.vocab_padding import DEFAULT_DIVISIBLE_BY, pad_rows


@dataclass
class MegatronCheckpoint:
    """A whole checkpoint merged to one Hugging Face view (TP and PP undone)."""

    iteration: int
    tag: str
    args: argparse.Namespace
    hf_config: Any  # transformers.GPTBigCodeConfig
    hf_state_dict: dict[str, torch.Tensor]
    optimizer: Any = None
    opt_param_scheduler: Any = None
    rng_state: Any = None
    extra: dict[str, Any] = field(default_factory=dict)  # further top-level entries of rank (0, 0)'s file


def write_megatron_checkpoint(
    root: str | Path,
    iteration: int | None,
    hf_state_dict: Mapping[str, torch.Tensor],
    hf_config: Any,
    tp: int = 1,
    pp: int = 1,
    optimizer: Any = None,
    opt_param_scheduler: Any = None,
    rng_state: Any = None,
    extra_args: dict[str, Any] | None = None,
    divisible_by: int = DEFAULT_DIVISIBLE_BY,
    extra_keys: dict[str, Any] | None = None,
) -> Path:
    """Write ``root/{release|iter_N}/mp_rank_*`` and the tracker; returns the tag folder.

    ``iteration=None`` writes a ``release`` checkpoint. The tag folder appears complete or not at all; an
    existing one is replaced only once the new one is fully written. The word embeddings (and the last
    stage's head copy) get zero rows up to ``args.padded_vocab_size`` (``conversion.vocab_padding``).
    ``extra_keys`` are further top-level entries written into every rank's file (the fork ignores them).
    """
    root = Path(root)
    if iteration is not None and iteration < 1:
        raise ValueError(f"iteration must be >= 1 (or None for a release), got {iteration}")
    if tp < 1 or pp < 1:
        raise ValueError(f"tp and pp must be >= 1, got tp={tp} pp={pp}")
    if hf_config.n_layer % pp:
        raise ValueError(f"n_layer {hf_config.n_layer} is not divisible by pipeline size {pp}")
    if hf_config.n_head % tp:
        raise ValueError(f"n_head {hf_config.n_head} is not divisible by tensor parallel size {tp}")
    _check_tied_head(hf_state_dict)
    tag = "release" if iteration is None else str(iteration)
    args = build_fork_args(hf_config, tp, pp, iteration or 0, extra_args, divisible_by)
    final = root / tag_dir_name(tag)
    with atomic_output_dir(final) as tmp:
        for stage in range(pp):
            for tp_rank in range(tp):
                flat = _rank_tensors(hf_state_dict, hf_config, tp, pp, stage, tp_rank, args.padded_vocab_size)
                state: dict[str, Any] = {
                    "args": args,
                    "checkpoint_version": CHECKPOINT_VERSION,
                    "iteration": iteration or 0,
                    "model": nest_model(flat),
                }
                if optimizer is not None and tp_rank == 0 and stage == 0:
                    state["optimizer"] = optimizer
                if opt_param_scheduler is not None:
                    state["opt_param_scheduler"] = opt_param_scheduler
                if rng_state is not None:
                    state["rng_state"] = rng_state
                state.update(extra_keys or {})
                save_checkpoint_file(tmp / rank_dir_name(tp_rank, stage, pp) / MODEL_FILE, state)
                del flat, state
    write_tracker(root, tag)
    return final


def read_megatron_checkpoint(
    root: str | Path, tag: str | None = None, tokenizer: str | Path | None = None
) -> MegatronCheckpoint:
    """Load a whole checkpoint (default: the tracker's tag) merged into one HF state dict, in memory; the
    vocab padding rows are dropped (``MegatronReader.hf_config`` says how many rows are real)."""
    reader = MegatronReader(root, tag)
    config = reader.hf_config(reader.tokenizer(tokenizer))
    state = dict(reader.iter_hf_tensors(config.vocab_size))
    state[HF_TIED_HEAD] = state["transformer.wte.weight"]
    optimizer = reader.optimizer
    if reader.layout.dist_opt and optimizer is None:
        optim_path = optimizer_file_path(reader.layout.root, reader.layout.tag, 0, 0, reader.layout.pp, 0)
        if optim_path.is_file():
            optimizer = load_checkpoint_file(optim_path).get("optimizer")
    return MegatronCheckpoint(
        iteration=reader.iteration, tag=reader.layout.tag, args=reader.args, hf_config=config,
        hf_state_dict=state, optimizer=optimizer, opt_param_scheduler=reader.opt_param_scheduler,
        rng_state=reader.rng_state, extra=reader.extra,
    )


def _check_tied_head(hf_state_dict: Mapping[str, torch.Tensor]) -> None:
    if HF_TIED_HEAD in hf_state_dict:
        head, wte = hf_state_dict[HF_TIED_HEAD], hf_state_dict["transformer.wte.weight"]
        if head is not wte and not torch.equal(head, wte):
            raise ValueError("lm_head.weight differs from transformer.wte.weight; Megatron ties them")


def _rank_tensors(
    hf_state_dict: Mapping[str, torch.Tensor], hf_config: Any, tp: int, pp: int, stage: int, tp_rank: int,
    padded_vocab: int,
) -> dict[str, torch.Tensor]:
    """Flat Megatron dict (stage-local layer numbers) of one rank. Each HF tensor is fetched, split and
    dropped in turn, so with a lazy mapping memory holds one rank's file plus one tensor."""
    def pieces(name: str, tensor: torch.Tensor) -> torch.Tensor:
        if name in (EMBEDDING_KEYS["transformer.wte.weight"], HEAD_KEY):
            tensor = pad_rows(tensor, padded_vocab)
        return tensor_piece(name, tensor.detach(), tp, tp_rank)

    flat: dict[str, torch.Tensor] = {}
    if stage == 0:
        for hf_name, megatron_name in EMBEDDING_KEYS.items():
            flat[megatron_name] = pieces(megatron_name, _get(hf_state_dict, hf_name))
    for local, layer in enumerate(stage_layers(hf_config.n_layer, pp, stage)):
        prefix = HF_LAYER_PREFIX.format(layer=layer)
        hf_layer = {suffix: _get(hf_state_dict, prefix + suffix) for suffix in HF_LAYER_SUFFIXES}
        for suffix, tensor in hf_layer_to_megatron(hf_layer, hf_config.n_embd).items():
            name = MEGATRON_LAYER_PREFIX.format(layer=local) + suffix
            flat[name] = pieces(name, tensor)
        del hf_layer
    if stage == pp - 1:
        for hf_name, megatron_name in FINAL_NORM_KEYS.items():
            flat[megatron_name] = pieces(megatron_name, _get(hf_state_dict, hf_name))
        if pp > 1:
            flat[HEAD_KEY] = pieces(HEAD_KEY, _get(hf_state_dict, "transformer.wte.weight"))
    return flat


class MissingTensorError(KeyError):
    """A tensor the GPT-BigCode layout needs is not in the Hugging Face state dict (printed without quotes)."""

    def __str__(self) -> str:
        return str(self.args[0])


def _get(hf_state_dict: Mapping[str, torch.Tensor], name: str) -> torch.Tensor:
    try:
        return hf_state_dict[name]
    except KeyError as exc:
        # A checkpoint reader's own message names its folder ("DIR: no tensor named ..."); a dict's is the key.
        where = exc.args[0] if exc.args and exc.args[0] != name else f"Hugging Face state dict lacks {name!r}"
        raise MissingTensorError(f"{where} (is it a GPTBigCodeForCausalLM checkpoint?)") from None

