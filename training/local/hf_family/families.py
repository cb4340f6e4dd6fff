"""Which Hugging Face causal LMs the local engine trains, and the facts it needs of each, read through the
``transformers`` interface rather than per-family code paths.

The engine reaches a model only through ``PreTrainedModel``'s generic interface: ``base_model`` (the decoder
stack, called with ``input_ids``, a 4-D attention mask and ``position_ids``), ``get_output_embeddings()``
(the LM head), ``_no_split_modules`` (the decoder layer class: one FSDP unit each) and the config's
``max_position_embeddings`` / ``num_hidden_layers`` / ``hidden_size``, which every family below answers
(GPT-BigCode through its attribute map). The table says which families are tested end to end
(``tests/test_hf_families.py``: packed rows == each document alone, the loss with the head applied only where
the loss looks == the full logits' loss), their LoRA target modules, and whether checkpoints use the fork's
Megatron layout (GPT-BigCode: the fork resumes them) or Hugging Face safetensors (the others). A
``model_type`` outside the table is refused by name: its head might scale or cap its logits (Gemma 2,
Cohere), which the head-only-where-needed loss would silently skip.

    family = family_of(model.config)      # raises UnsupportedModelError naming the supported types
    layers = decoder_layers(model)        # the modules FSDP2 shards one by one
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

LLAMA_LIKE_LORA = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class Family:
    model_type: str
    megatron_layout: bool  # checkpoints in the fork's layout (it can resume them) instead of HF safetensors
    lora_targets: tuple[str, ...]


FAMILIES: dict[str, Family] = {
    "gpt_bigcode": Family("gpt_bigcode", True, ("c_attn", "c_proj", "c_fc")),
    "llama": Family("llama", False, LLAMA_LIKE_LORA),
    "mistral": Family("mistral", False, LLAMA_LIKE_LORA),
    "qwen2": Family("qwen2", False, LLAMA_LIKE_LORA),
    "starcoder2": Family("starcoder2", False, ("q_proj", "k_proj", "v_proj", "o_proj", "c_fc", "c_proj")),
}


class UnsupportedModelError(ValueError):
    """A model the local engine does not train; the message names the supported families."""


def family_of(config: Any) -> Family:
    model_type = getattr(config, "model_type", None)
    if model_type not in FAMILIES:
        raise UnsupportedModelError(
            f"model_type {model_type!r} is not one the local engine trains ({', '.join(sorted(FAMILIES))});"
            " start from a model of one of these families (config.json's model_type)")
    return FAMILIES[model_type]


def uses_megatron_layout(config: Any) -> bool:
    return family_of(config).megatron_layout


def backbone(lm: torch.nn.Module) -> torch.nn.Module:
    """The decoder stack of a ``*ForCausalLM`` (``transformer`` of GPT-BigCode, ``model`` of Llama & co)."""
    return lm.base_model


def head(lm: torch.nn.Module) -> torch.nn.Module:
    """The LM head (tied to the input embeddings or not, as the config says)."""
    return lm.get_output_embeddings()


def decoder_layers(lm: torch.nn.Module) -> list[torch.nn.Module]:
    """Every decoder layer, in order: the modules of the classes ``_no_split_modules`` names."""
    names = set(getattr(lm, "_no_split_modules", None) or ())
    layers = [module for module in lm.modules() if type(module).__name__ in names]
    if not layers:
        raise UnsupportedModelError(f"{type(lm).__name__}: no decoder layers found (_no_split_modules {sorted(names)})")
    return layers


def max_positions(config: Any) -> int:
    return int(config.max_position_embeddings)


def default_lora_targets(config: Any) -> tuple[str, ...]:
    return family_of(config).lora_targets


def enable_activation_checkpointing(lm: torch.nn.Module) -> None:
    """Recompute every decoder layer in the backward pass (non-reentrant: the RNG state is replayed, so dropout
    draws the same masks and the result is the run's without it)."""
    options = {"use_reentrant": False}
    if hasattr(lm, "activation_checkpointing_enable"):  # transformers >= 5.x; the older name is deprecated
        lm.activation_checkpointing_enable(options)
    else:
        lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs=options)
