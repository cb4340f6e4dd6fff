"""LoRA (through ``peft``) for the local engine, merged into plain weights whenever a checkpoint is written.

Adapters go on ``c_attn``, ``c_proj`` (attention and MLP) and ``c_fc`` with rank / alpha / dropout
from ``training.lora``; only adapter weights train. A checkpoint holds the *merged* model
(``W + B @ A * alpha / r``) under the ordinary GPT-BigCode names, so conversion and evaluation see a
plain model; the adapter weights ride along in the optimizer entry so that a resumed run continues
from the exact adapters (the frozen base is re-read from ``training.load``, which is never written).

QLoRA (4-bit NF4 base weights through bitsandbytes) needs a CUDA GPU; on CPU it stops with a message.

    model = apply_lora(model, cfg.lora, device)
    state = merged_state_dict(model)          # plain HF names, base + delta
    adapters = adapter_state_dict(model); load_adapter_state(model, adapters)
"""
from __future__ import annotations

import tempfile
from typing import Any

import torch

class QLoraUnavailableError(RuntimeError):
    """QLoRA was asked for where it cannot run (no CUDA GPU, no bitsandbytes); the message says what to do."""


def check_qlora_possible(device: torch.device) -> None:
    if device.type != "cuda":
        raise QLoraUnavailableError(
            "training.lora.qlora=true needs a CUDA GPU (bitsandbytes 4-bit kernels); this run is on"
            f" {device}. On CPU use LoRA without quantisation: training.lora.qlora=false"
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise QLoraUnavailableError(
            "training.lora.qlora=true needs the bitsandbytes package: pip install bitsandbytes") from exc


def _quantize_4bit(model: torch.nn.Module) -> torch.nn.Module:
    """Reload the base model with NF4 4-bit weights (through a temporary HF folder)."""
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                               bnb_4bit_compute_dtype=torch.bfloat16, bnb_4bit_use_double_quant=True)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        quantized = AutoModelForCausalLM.from_pretrained(tmp, quantization_config=quant,
                                                         attn_implementation="sdpa", device_map={"": 0})
    return prepare_model_for_kbit_training(quantized, use_gradient_checkpointing=False)


def apply_lora(model: torch.nn.Module, lora_cfg: Any, device: torch.device) -> torch.nn.Module:
    """Wrap ``model`` with LoRA adapters; with ``qlora`` the base weights are first quantised to 4 bits."""
    from peft import LoraConfig, get_peft_model

    if lora_cfg.qlora:
        check_qlora_possible(device)
        model = _quantize_4bit(model)
    peft_cfg = LoraConfig(
        r=lora_cfg.rank,
        lora_alpha=lora_cfg.alpha,
        lora_dropout=lora_cfg.dropout,
        target_modules=list(lora_cfg.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, peft_cfg)


def is_lora(model: torch.nn.Module) -> bool:
    return hasattr(model, "peft_config")


def _dense_weight(layer: torch.nn.Module) -> torch.Tensor:
    weight = layer.weight
    if hasattr(weight, "quant_state"):  # bitsandbytes Params4bit
        import bitsandbytes.functional as bnb_f

        return bnb_f.dequantize_4bit(weight.data, weight.quant_state).float()
    return weight.detach().float()


def merged_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Plain GPT-BigCode weights (fp32, CPU) with every adapter folded in; the model is not modified."""
    from peft.tuners.lora import LoraLayer

    inner = model.base_model.model
    merged: dict[str, torch.Tensor] = {}
    lora_modules = {name: mod for name, mod in inner.named_modules() if isinstance(mod, LoraLayer)}
    for name, tensor in inner.state_dict().items():
        if "lora_" in name or name == "lm_head.weight":
            continue
        plain = name.replace(".base_layer.", ".")
        merged[plain] = tensor.detach().float().cpu()
    with torch.no_grad():
        for name, module in lora_modules.items():
            base = module.get_base_layer()
            weight = _dense_weight(base)
            for adapter in module.active_adapters:
                weight = weight + module.get_delta_weight(adapter).float()
            merged[f"{name}.weight"] = weight.cpu()
            if base.bias is not None:
                merged[f"{name}.bias"] = base.bias.detach().float().cpu()
    return merged


def adapter_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items() if "lora_" in k}


def load_adapter_state(model: torch.nn.Module, adapters: dict[str, torch.Tensor]) -> None:
    own = {k for k in model.state_dict() if "lora_" in k}
    if set(adapters) != own:
        raise ValueError(
            "the checkpoint's LoRA adapters do not match this run's LoRA config"
            f" (missing {sorted(own - set(adapters))[:3]}, extra {sorted(set(adapters) - own)[:3]});"
            " resume with the same training.lora settings"
        )
    with torch.no_grad():
        params = dict(model.named_parameters())
        for key, value in adapters.items():
            params[key].copy_(value)
