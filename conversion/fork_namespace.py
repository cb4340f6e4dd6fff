"""The fork's ``args`` Namespace without the fork: stand-in classes, a pickler for them, and the builders.

A BigCode Megatron-LM (branch ``mtf``) checkpoint stores ``args``, a pickled ``argparse.Namespace`` whose
values include the fork's enums (``megatron.model.enums.PositionEmbeddingType.absolute``, ``ModelType``...)
and torch dtypes. This module:

* defines stand-in enums that carry the fork's module and qualified names and values, so that the safe
  unpickler in ``conversion.checkpoint_format`` maps those globals to them (the fork is never imported and
  no code runs);
* provides ``FORK_PICKLE_MODULE``, a pickle module for ``torch.save`` that writes the stand-ins under the
  fork's real module paths, so the fork itself loads what we write;
* builds the Namespace from a Hugging Face ``GPTBigCodeConfig`` (``build_fork_args``) and the config back
  from a Namespace (``hf_config_from_args``).

Library module, no command line.
"""
from __future__ import annotations

import argparse
import enum
import pickle
from types import SimpleNamespace
from typing import Any

from conversion.fork_arg_defaults import FORK_ARG_DEFAULTS
from conversion.vocab_padding import DEFAULT_DIVISIBLE_BY, padded_vocab_size

FORK_ENUMS_MODULE = "megatron.model.enums"
FORK_CORE_ENUMS_MODULE = "megatron.core.enums"


def _fork_enum(name: str, members: dict[str, int], module: str = FORK_ENUMS_MODULE) -> type[enum.Enum]:
    return enum.Enum(name, members, module=module, qualname=name)


# Values copied from the fork's megatron/model/enums.py (pickles store the value, so they must match).
ModelType = _fork_enum("ModelType", {"encoder_or_decoder": 1, "encoder_and_decoder": 2})
LayerType = _fork_enum("LayerType", {"encoder": 1, "decoder": 2})
AttnType = _fork_enum("AttnType", {"self_attn": 1, "cross_attn": 2})
AttnMaskType = _fork_enum("AttnMaskType", {"padding": 1, "causal": 2, "prefix": 3, "custom": 4})
PositionEmbeddingType = _fork_enum("PositionEmbeddingType", {"rotary": 1, "absolute": 2, "alibi": 3})
# Later Megatron versions moved ModelType here; checkpoints from them reference this path.
CoreModelType = _fork_enum("ModelType", {"encoder_or_decoder": 1, "encoder_and_decoder": 2},
                           module=FORK_CORE_ENUMS_MODULE)

STAND_INS: tuple[type[enum.Enum], ...] = (
    ModelType, LayerType, AttnType, AttnMaskType, PositionEmbeddingType, CoreModelType,
)


def stand_in_globals() -> list[tuple[Any, str]]:
    """(object, "module.qualname") pairs for ``torch.serialization.safe_globals``."""
    pairs: list[tuple[Any, str]] = [(cls, f"{cls.__module__}.{cls.__qualname__}") for cls in STAND_INS]
    pairs.append((argparse.Namespace, "argparse.Namespace"))
    return pairs


class _ForkPickler(pickle._Pickler):  # the pure-Python pickler lets us write a global by name
    """Pickles stand-in enums as the fork's globals, skipping pickle's "is it importable" check.

    Pickle normally imports ``megatron.model.enums`` to check the class is the one found there; the fork
    is not installed here, and the fork must see its own class, so the GLOBAL opcode is written directly.
    """

    def save_global(self, obj: Any, name: str | None = None) -> None:
        if obj in STAND_INS:
            if self.proto >= 4:
                self.save(obj.__module__)
                self.save(obj.__qualname__)
                self.write(pickle.STACK_GLOBAL)
            else:
                self.write(pickle.GLOBAL + f"{obj.__module__}\n{obj.__qualname__}\n".encode("utf-8"))
            self.memoize(obj)
            return
        super().save_global(obj, name)


FORK_PICKLE_MODULE = SimpleNamespace(Pickler=_ForkPickler, __name__="conversion.fork_namespace.pickle")


class ForkArgsError(ValueError):
    """The checkpoint's args describe a model this toolkit cannot map to GPT-BigCode."""


def build_fork_args(
    hf_config: Any, tp: int, pp: int, iteration: int = 0, extra_args: dict[str, Any] | None = None,
    divisible_by: int = DEFAULT_DIVISIBLE_BY,
) -> argparse.Namespace:
    """The Namespace the fork expects in a checkpoint of ``hf_config`` split ``tp`` x ``pp``.

    Every name of the fork's parser is there (``conversion.fork_arg_defaults``), with the fork's default
    unless the model or ``extra_args`` (the run's values) say otherwise. ``--use-checkpoint-args`` and
    ``check_checkpoint_args`` read num_layers, hidden_size, num_attention_heads, max_position_embeddings,
    make_vocab_size_divisible_by, padded_vocab_size, tokenizer_type, data_parallel_random_init and the
    parallel sizes. The vocab is padded the fork's way (``conversion.vocab_padding``): ``padded_vocab_size``
    is ``hf_config.vocab_size`` rounded up to a multiple of ``divisible_by x tp``, and the real size is kept
    as ``true_vocab_size``.
    """
    if not getattr(hf_config, "multi_query", False):
        raise ForkArgsError("only multi-query GPT-BigCode models are supported (config multi_query is false)")
    act = hf_config.activation_function
    if act not in ("gelu_pytorch_tanh", "gelu_new", "gelu_fast", "gelu"):
        raise ForkArgsError(f"activation_function {act!r} has no Megatron equivalent (use gelu_pytorch_tanh)")
    tanh_gelu = act != "gelu"
    vocab = hf_config.vocab_size
    heads = hf_config.n_head
    ffn = hf_config.n_inner if hf_config.n_inner is not None else 4 * hf_config.n_embd
    # every name the fork's parser defines, at its default (tokenizer files None, fp16/bf16 off, no distributed
    # optimizer, ...); below only what the model, the layout and the run change
    values: dict[str, Any] = dict(FORK_ARG_DEFAULTS)
    values.update(
        num_layers=hf_config.n_layer,
        hidden_size=hf_config.n_embd,
        ffn_hidden_size=ffn,
        num_attention_heads=heads,
        kv_channels=hf_config.n_embd // heads,
        attention_head_type="multiquery",
        max_position_embeddings=hf_config.n_positions,
        seq_length=hf_config.n_positions,
        position_embedding_type=PositionEmbeddingType.absolute,
        padded_vocab_size=padded_vocab_size(vocab, divisible_by, tp),
        make_vocab_size_divisible_by=divisible_by,
        true_vocab_size=vocab,
        tokenizer_type="TokenizerFromFile",
        layernorm_epsilon=hf_config.layer_norm_epsilon,
        init_method_std=hf_config.initializer_range,
        hidden_dropout=hf_config.resid_pdrop,
        attention_dropout=hf_config.attn_pdrop,
        bias_gelu_fusion=tanh_gelu,  # the fused bias-GELU is Megatron's tanh GELU
        tensor_model_parallel_size=tp,
        pipeline_model_parallel_size=pp,
        data_parallel_size=1,
        model_type=ModelType.encoder_or_decoder,
        params_dtype=_params_dtype(hf_config),
        iteration=iteration,
        consumed_train_samples=0,
        consumed_valid_samples=0,
    )
    values.update(extra_args or {})
    # what the fork's validate_args derives from the values above
    values.update(
        encoder_seq_length=values["seq_length"],
        transformer_pipeline_model_parallel_size=pp,
        virtual_pipeline_model_parallel_size=None,
        world_size=values["data_parallel_size"] * tp * pp,
    )
    for name in ("start_weight_decay", "end_weight_decay"):
        if values[name] is None:
            values[name] = values["weight_decay"]
    return argparse.Namespace(**values)


def hf_config_from_args(args: argparse.Namespace, bos_token_id: int, eos_token_id: int,
                        vocab_size: int | None = None) -> Any:
    """The ``GPTBigCodeConfig`` (DESIGN.md 2.5) of a checkpoint whose args are ``args``; ``vocab_size`` is the
    real vocab (default: every row of the padded embedding, ``args.padded_vocab_size``)."""
    from transformers import GPTBigCodeConfig

    def need(name: str) -> Any:
        if not hasattr(args, name):
            raise ForkArgsError(f"checkpoint args lack {name!r}; cannot describe the model")
        return getattr(args, name)

    head_type = getattr(args, "attention_head_type", "multiquery")
    if head_type != "multiquery":
        raise ForkArgsError(f"attention_head_type {head_type!r}: only 'multiquery' maps to GPT-BigCode here")
    pos = getattr(args, "position_embedding_type", PositionEmbeddingType.absolute)
    if getattr(pos, "name", pos) not in ("absolute", "learned_absolute"):
        raise ForkArgsError(f"position_embedding_type {pos!r}: GPT-BigCode needs learned absolute positions")
    if getattr(args, "apply_residual_connection_post_layernorm", False):
        raise ForkArgsError("apply_residual_connection_post_layernorm=True has no GPT-BigCode equivalent")
    tanh = getattr(args, "bias_gelu_fusion", True) or getattr(args, "openai_gelu", False)
    hidden = need("hidden_size")
    ffn = getattr(args, "ffn_hidden_size", None) or 4 * hidden
    return GPTBigCodeConfig(
        vocab_size=vocab_size or need("padded_vocab_size"),
        n_positions=need("max_position_embeddings"),
        n_embd=hidden,
        n_layer=need("num_layers"),
        n_head=need("num_attention_heads"),
        n_inner=ffn,
        activation_function="gelu_pytorch_tanh" if tanh else "gelu",
        layer_norm_epsilon=getattr(args, "layernorm_epsilon", 1e-5),
        initializer_range=getattr(args, "init_method_std", 0.02),
        resid_pdrop=getattr(args, "hidden_dropout", 0.1),
        embd_pdrop=getattr(args, "hidden_dropout", 0.1),
        attn_pdrop=getattr(args, "attention_dropout", 0.1),
        multi_query=True,
        scale_attn_weights=True,
        attention_softmax_in_fp32=True,
        scale_attention_softmax_in_fp32=True,
        tie_word_embeddings=True,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        architectures=["GPTBigCodeForCausalLM"],
    )


def _params_dtype(hf_config: Any) -> Any:
    """A torch dtype for ``params_dtype`` (configs store a dtype, a string or nothing)."""
    import torch

    # transformers 5 calls it ``dtype``; 4.x ``torch_dtype`` (read from __dict__: the 5.x alias warns).
    value = getattr(hf_config, "dtype", None) or vars(hf_config).get("torch_dtype")
    if isinstance(value, str):
        value = getattr(torch, value, None)
    return value if isinstance(value, torch.dtype) else torch.float32
