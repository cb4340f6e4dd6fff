"""AdamW as the fork sets it up: two parameter groups, no weight decay on biases and norms.

Megatron's ``_get_params_for_weight_decay_optimization`` puts every bias and every LayerNorm
parameter (all 1-D tensors in GPT-BigCode) in a group with weight decay 0, and everything else
(embeddings included) in a group with ``weight_decay``; like the fork's ``get_param_groups`` the groups carry
``wd_mult`` (1.0 / 0.0) and ``lr_mult`` (1.0), and ``names`` (the HF parameter names, in index order, which the
checkpoint needs to write the fork's optimizer state). The optimizer is Adam with decoupled weight
decay (apex ``FusedAdam(adam_w_mode=True)`` in the fork, ``torch.optim.AdamW`` here).

    optimizer = build_adamw(model, cfg)
"""
from __future__ import annotations

from typing import Any

import torch


def split_weight_decay(model: torch.nn.Module) -> tuple[list[str], list[str]]:
    """Names of trainable parameters (with decay, without decay), in module order."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if name.endswith(".bias") or param.dim() == 1:
            no_decay.append(name)
        else:
            decay.append(name)
    return decay, no_decay


def build_adamw(model: torch.nn.Module, cfg: Any, fused: bool = True) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; betas, eps and weight decay from the ``training`` config.

    ``fused``: torch's single-kernel AdamW (CPU and CUDA; an order of magnitude faster than the
    per-tensor loop and just as deterministic). FSDP2's sharded parameters take the multi-tensor path.
    """
    params = dict(model.named_parameters())
    decay, no_decay = split_weight_decay(model)
    if not decay and not no_decay:
        raise ValueError("the model has no trainable parameters (is everything frozen?)")
    groups = [
        {"params": [params[n] for n in decay], "weight_decay": cfg.weight_decay, "names": decay,
         "wd_mult": 1.0, "lr_mult": 1.0},
        {"params": [params[n] for n in no_decay], "weight_decay": 0.0, "names": no_decay,
         "wd_mult": 0.0, "lr_mult": 1.0},
    ]
    groups = [g for g in groups if g["params"]]
    kernel = {"fused": True} if fused else {"foreach": True}
    return torch.optim.AdamW(
        groups,
        lr=0.0,  # the schedule sets the rate before every step
        betas=(cfg.adam_beta1, cfg.adam_beta2),
        eps=cfg.adam_eps,
        **kernel,
    )


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
