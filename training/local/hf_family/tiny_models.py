"""Tiny random models of every family the local engine trains, for the tests, the demo and the benchmark.

The shapes keep what distinguishes each family: Llama (grouped-query attention, RoPE, SwiGLU, untied head),
Mistral (the same with a sliding window shorter than the rows, so the window matters), Qwen2 (biases on
q/k/v, a sliding window on the upper layers only: two kinds of layers), StarCoder2 (biases, LayerNorm, GELU MLP,
tied head), GPT-BigCode (multi-query attention, learned positions; ``training.model_init`` writes it as a
Megatron release). Vocabulary, EOD and pad ids come from a ``tokenizer.json`` as for GPT-BigCode.

    python -m training.model_init --family llama --tokenizer tokenizer.json --out out/tiny_llama
    config = tiny_hf_config("llama", vocab_size=8192, eod_id=0, pad_id=4, shape=TinyModelSpec())
"""
from __future__ import annotations

from typing import Any

import torch

TINY_FAMILIES = ("llama", "mistral", "qwen2", "starcoder2")


def tiny_hf_config(family: str, vocab_size: int, eod_id: int | None, pad_id: int | None, shape: Any) -> Any:
    """A ``transformers`` config of ``family`` (one of :data:`TINY_FAMILIES`); ``shape`` a
    ``training.local.model_init.TinyModelSpec`` (layers, hidden, heads, ffn_hidden, max_positions, dropout)."""
    from transformers import AutoConfig

    if family not in TINY_FAMILIES:
        raise ValueError(f"--family {family!r}: one of {', '.join(TINY_FAMILIES)} (gpt_bigcode: the default)")
    eod = eod_id if eod_id is not None else 0
    kv_heads = max(1, shape.heads // 2)  # grouped-query attention: two query heads per key/value head
    common: dict[str, Any] = dict(
        vocab_size=vocab_size, hidden_size=shape.hidden, num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads, num_key_value_heads=kv_heads,
        max_position_embeddings=shape.max_positions, bos_token_id=eod, eos_token_id=eod, pad_token_id=pad_id,
        attention_dropout=shape.dropout,
    )
    window = max(8, shape.max_positions // 4)
    if family == "starcoder2":
        return AutoConfig.for_model(
            "starcoder2", **common, intermediate_size=shape.ffn_hidden or 4 * shape.hidden,
            residual_dropout=shape.dropout, embedding_dropout=shape.dropout, tie_word_embeddings=True)
    swiglu = shape.ffn_hidden or 32 * -(-8 * shape.hidden // 3 // 32)  # 8/3 x hidden, rounded up to 32
    if family == "mistral":
        return AutoConfig.for_model("mistral", **common, intermediate_size=swiglu, sliding_window=window,
                                    tie_word_embeddings=False)
    if family == "qwen2":
        return AutoConfig.for_model("qwen2", **common, intermediate_size=swiglu, use_sliding_window=True,
                                    sliding_window=window, max_window_layers=max(1, shape.layers // 2),
                                    tie_word_embeddings=False)
    return AutoConfig.for_model("llama", **common, intermediate_size=swiglu, tie_word_embeddings=False)


def random_hf_model(config: Any, seed: int) -> torch.nn.Module:
    """A randomly initialised ``*ForCausalLM`` of ``config`` (fp32, SDPA attention), the same for the same seed."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa", dtype=torch.float32)
    return model
