"""The fork's ``optimizer`` checkpoint entry for an fp32 run, built from (and back to) a Hugging Face-named AdamW.

The fork (branch ``mtf``, ``megatron/optimizer``) wraps Adam in ``FP32Optimizer`` when it runs in fp32 without
the distributed optimizer; ``FP32Optimizer.state_dict()`` is the inner optimizer's plain ``state_dict()``:

* ``param_groups``: the fork's ``get_param_groups`` order, first every weight that decays (``wd_mult`` 1.0),
  then every bias and norm (``wd_mult`` 0.0), both with ``lr_mult`` 1.0; parameters numbered across the
  groups in the fork model's ``named_parameters()`` order (word then position embeddings; per layer
  input_layernorm, query, key_value, dense, post_attention_layernorm, dense_h_to_4h, dense_4h_to_h; then
  final_layernorm). Its scheduler multiplies ``lr``/``weight_decay`` by ``lr_mult``/``wd_mult``.
* ``state``: ``{index: {"exp_avg", "exp_avg_sq", "step"}}`` shaped like the fork's parameters: HF's ``c_attn``
  moments split into ``query`` and ``key_value`` rows, the word embeddings' padded to the padded vocab with
  zeros (``conversion.vocab_padding``).

Group keys are the union of apex ``FusedAdam``'s (``bias_correction``, a group-level ``step``) and
``torch.optim.AdamW``'s, because ``Optimizer.load_state_dict`` replaces a group's keys with the saved ones and
either class may be the fork's Adam. ``to_fork_optimizer`` builds the entry from the local engine's AdamW
``state_dict()`` (whose groups carry ``names``, ``wd_mult`` and ``lr_mult``); ``from_fork_optimizer`` turns
it back into that optimizer's ``state_dict()`` (bit for bit, so the engine resumes exactly).

``FORK_RESUME_KEY`` names the top-level checkpoint entry that says whether and how the fork can load the
``optimizer`` (see ``fork_resume_entry`` and DESIGN.md 2.4); the fork ignores top-level keys it does not know.

Library module, no command line.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from conversion.key_map import EMBEDDING_KEYS, FINAL_NORM_KEYS, FUSED_QKV, LAYER_RENAMES, MEGATRON_LAYER_PREFIX
from conversion.vocab_padding import pad_rows

FORK_RESUME_KEY = "fork_resume"
FP32_OPTIMIZER = "FP32Optimizer"
_WTE = "transformer.wte.weight"
_HF_LAYER = re.compile(r"^transformer\.h\.(\d+)\.(.+)$")
# AdamW's implementation switches: neutral values in the fork's entry, the engine's own on the way back.
_NEUTRAL_GROUP_KEYS = {"foreach": None, "fused": None, "capturable": False, "differentiable": False,
                       "maximize": False, "amsgrad": False, "decoupled_weight_decay": True}
_ENGINE_ONLY_GROUP_KEYS = ("names", "params", "param_names")
_HYPERPARAMETERS = ("lr", "betas", "eps", "weight_decay", "wd_mult", "lr_mult")


class ForkOptimizerError(ValueError):
    """An optimizer state that does not match the model or the fork's structure; the message says how."""


def fork_param_names(hf_name: str) -> list[str]:
    """The fork's parameter names (in its order) that hold the HF parameter ``hf_name``."""
    if hf_name in EMBEDDING_KEYS:
        return [EMBEDDING_KEYS[hf_name]]
    if hf_name in FINAL_NORM_KEYS:
        return [FINAL_NORM_KEYS[hf_name]]
    match = _HF_LAYER.match(hf_name)
    if match:
        prefix, suffix = MEGATRON_LAYER_PREFIX.format(layer=int(match.group(1))), match.group(2)
        if suffix in FUSED_QKV:
            return [prefix + part for part in FUSED_QKV[suffix]]
        if suffix in LAYER_RENAMES:
            return [prefix + LAYER_RENAMES[suffix]]
    raise ForkOptimizerError(f"optimizer parameter {hf_name!r} has no place in the fork's GPT model")


def _to_fork_tensors(hf_name: str, tensor: torch.Tensor, hidden_size: int, padded_vocab: int) -> list[torch.Tensor]:
    if hf_name == _WTE:
        return [pad_rows(tensor.detach().cpu(), padded_vocab)]
    if hf_name.endswith(tuple(FUSED_QKV)):
        return [tensor[:hidden_size].detach().cpu().clone(), tensor[hidden_size:].detach().cpu().clone()]
    return [tensor.detach().cpu().clone()]


def to_fork_optimizer(engine_state: dict[str, Any], hidden_size: int, padded_vocab: int) -> dict[str, Any]:
    """The fork's ``FP32Optimizer.state_dict()`` holding the AdamW state ``engine_state`` (HF-named groups)."""
    state_in, state_out, groups_out, index = engine_state["state"], {}, [], 0
    for group in engine_state["param_groups"]:
        if "names" not in group or "wd_mult" not in group:
            raise ForkOptimizerError("optimizer groups lack 'names'/'wd_mult': not built by training.local.optim_setup")
        steps: set[int] = set()
        ids: list[int] = []
        for hf_name, param_id in zip(group["names"], group["params"]):
            param_state = state_in.get(param_id, {})
            moments = {key: _to_fork_tensors(hf_name, value, hidden_size, padded_vocab)
                       for key, value in param_state.items() if key != "step"}
            for k in range(len(fork_param_names(hf_name))):
                if param_state:
                    state_out[index] = {key: parts[k] for key, parts in moments.items()}
                    if "step" in param_state:
                        state_out[index]["step"] = param_state["step"].detach().cpu().clone()
                ids.append(index)
                index += 1
            if "step" in param_state:
                steps.add(int(param_state["step"]))
        fork_group = {key: value for key, value in group.items() if key not in _ENGINE_ONLY_GROUP_KEYS}
        fork_group.update(_NEUTRAL_GROUP_KEYS, bias_correction=True, params=ids)
        if steps:  # apex FusedAdam counts steps per group; every parameter of the group took every step
            fork_group["step"] = max(steps)
        groups_out.append(fork_group)
    return {"state": state_out, "param_groups": groups_out}


def from_fork_optimizer(fork_state: dict[str, Any], template: dict[str, Any], hidden_size: int,
                        vocab_size: int) -> dict[str, Any]:
    """The engine's AdamW ``state_dict()`` from the fork's entry; ``template`` is the fresh optimizer's own
    ``state_dict()`` (its groups give names, ids and implementation switches; hyperparameters come from the
    checkpoint, as ``load_state_dict`` would take them)."""
    fork_groups, template_groups = fork_state.get("param_groups"), template["param_groups"]
    if not isinstance(fork_groups, list) or len(fork_groups) != len(template_groups):
        raise ForkOptimizerError(f"the checkpoint's optimizer has {len(fork_groups or [])} param groups, the model"
                                 f" {len(template_groups)}")
    state_in, state_out, groups_out = fork_state.get("state", {}), {}, []
    for fork_group, group in zip(fork_groups, template_groups):
        ids = iter(fork_group["params"])
        expected = sum(len(fork_param_names(name)) for name in group["names"])
        if expected != len(fork_group["params"]):
            raise ForkOptimizerError(f"a checkpoint optimizer group has {len(fork_group['params'])} parameters, the"
                                     f" model's {expected}; is it the same model?")
        for hf_name, param_id in zip(group["names"], group["params"]):
            parts = [state_in.get(next(ids), {}) for _ in fork_param_names(hf_name)]
            if not parts[0]:
                continue
            restored = {key: _from_fork_tensors(hf_name, [p[key] for p in parts], vocab_size)
                        for key in parts[0] if key != "step"}
            if "step" in parts[0]:
                restored["step"] = parts[0]["step"]
            state_out[param_id] = restored
        new_group = dict(group)
        new_group.update({key: fork_group[key] for key in _HYPERPARAMETERS if key in fork_group})
        groups_out.append(new_group)
    return {"state": state_out, "param_groups": groups_out}


def _from_fork_tensors(hf_name: str, parts: list[torch.Tensor], vocab_size: int) -> torch.Tensor:
    if hf_name == _WTE:
        return parts[0][:vocab_size].clone()
    return torch.cat(parts, dim=0) if len(parts) > 1 else parts[0]


def fork_resume_entry(not_written_because: str | None, trained_dtype: str) -> dict[str, Any]:
    """The ``fork_resume`` top-level entry: what ``optimizer`` holds and when the fork can load it.

    ``optimizer_class`` ``"FP32Optimizer"``: the entry is that class's state, which a fork run in fp32 without
    the distributed optimizer loads and continues from (the engine keeps fp32 master weights and moments
    whatever its autocast dtype, ``trained_dtype``). A fork run with ``--fp16``/``--bf16`` (its
    ``Float16OptimizerWithFloat16Params`` wants ``fp32_from_fp16_params``) or ``--use-distributed-optimizer``
    (its own ``optim.pt`` files) cannot load it and must start with ``--no-load-optim``; nor can any fork run
    when no optimizer state was written (``load_optim`` False, ``reason`` says why, e.g. LoRA).
    """
    return {
        "load_optim": not_written_because is None,
        "optimizer_class": FP32_OPTIMIZER if not_written_because is None else None,
        "reason": not_written_because,
        "trained_dtype": trained_dtype,
    }


def fork_needs_no_load_optim(entry: dict[str, Any] | None, fork_mixed_precision: bool,
                             fork_distributed_optimizer: bool) -> str | None:
    """Why a fork run with these flags must add ``--no-load-optim`` for a checkpoint with ``entry``, or None.

    ``entry`` None (no ``fork_resume`` key: a checkpoint the fork saved itself) needs nothing.
    """
    if entry is None:
        return None
    if not entry.get("load_optim") or entry.get("optimizer_class") != FP32_OPTIMIZER:
        return entry.get("reason") or "the checkpoint holds no optimizer state the fork can load"
    if fork_mixed_precision or fork_distributed_optimizer:
        return ("the checkpoint's optimizer state is the fork's FP32Optimizer's (fp32, no distributed optimizer);"
                " a fork run with --fp16/--bf16 or --use-distributed-optimizer expects another structure")
    return None


def read_fork_resume(root: str | Path, tag: str | None = None) -> dict[str, Any] | None:
    """The ``fork_resume`` entry of ``root``'s checkpoint (default: the tracker's), without reading tensor data."""
    from conversion.checkpoint_format import discover_layout, load_checkpoint_file

    first = discover_layout(root, tag).model_file(0, 0)
    return load_checkpoint_file(first, meta=True).get(FORK_RESUME_KEY)
