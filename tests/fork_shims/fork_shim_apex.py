"""apex stand-ins and the fork's fused-kernel loader, in plain torch, for the fork's loop in tests.

``install()`` registers modules in ``sys.modules`` under the names the fork imports (see ``sitecustomize`` for
the list and why); each computes what the CUDA extension it replaces computes, with torch's own CPU kernels.
"""
from __future__ import annotations

import sys
import types

import torch


class FusedAdam(torch.optim.AdamW):
    """apex ``FusedAdam`` with its defaults (``adam_w_mode=True``: decoupled weight decay, bias correction on),
    computed by torch's AdamW (its fused CPU kernel, as the local engine's)."""

    def __init__(self, params, lr=1e-3, bias_correction=True, betas=(0.9, 0.999), eps=1e-8, adam_w_mode=True,
                 weight_decay=0.0, amsgrad=False, set_grad_none=True, **unused):  # noqa: ANN001 - apex's signature
        if not (bias_correction and adam_w_mode) or amsgrad:
            raise NotImplementedError("the stand-in covers FusedAdam(adam_w_mode=True, bias_correction=True)")
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, fused=True)


class FusedSGD(torch.optim.SGD):
    """apex ``FusedSGD``: torch's SGD (the fork builds it only with ``--optimizer sgd``)."""

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
                 **unused):  # noqa: ANN001 - apex's signature
        super().__init__(params, lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                         nesterov=nesterov)


def multi_tensor_applier(op, noop_flag_buffer, tensor_lists, *args):  # noqa: ANN001 - apex's signature
    """apex's ``multi_tensor_applier``: call ``op`` on the whole lists (no chunking is needed on CPU)."""
    return op(2048 * 32, noop_flag_buffer, tensor_lists, *args)


def multi_tensor_l2norm(chunk_size, noop_flag, tensor_lists, per_tensor):  # noqa: ANN001
    """``amp_C.multi_tensor_l2norm``: (the L2 norm of all tensors as a 1-element fp32 tensor, per-tensor norms)."""
    norms = torch.stack([torch.linalg.vector_norm(t.float()) for t in tensor_lists[0]]) if tensor_lists[0] \
        else torch.zeros(0)
    total = torch.linalg.vector_norm(norms).reshape(1)
    return total, (norms if per_tensor else torch.zeros(0))


def multi_tensor_scale(chunk_size, noop_flag, tensor_lists, scale):  # noqa: ANN001
    """``amp_C.multi_tensor_scale``: ``out = in * scale`` for each pair; flags a non-finite input as apex does."""
    for src, dst in zip(tensor_lists[0], tensor_lists[1]):
        if not torch.isfinite(src).all():
            noop_flag.fill_(1)
        dst.copy_(src * scale)


def forward_affine(input_, normalized_shape, weight, bias, eps):  # noqa: ANN001
    """``fused_mix_prec_layer_norm_cuda.forward_affine``: (output, mean, inverse std), by torch's layer norm."""
    output, mean, invvar = torch.ops.aten.native_layer_norm(input_, list(normalized_shape), weight, bias, eps)
    return output, mean, invvar


def backward_affine(grad_output, mean, invvar, input_, normalized_shape, weight, bias, eps):  # noqa: ANN001
    """``fused_mix_prec_layer_norm_cuda.backward_affine``: (grad input, grad weight, grad bias)."""
    return torch.ops.aten.native_layer_norm_backward(grad_output, input_, list(normalized_shape), mean, invvar,
                                                      weight, bias, [True, True, True])


def _module(name: str, **attributes: object) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    sys.modules[name] = module
    return module


def install() -> None:
    apex = _module("apex")
    apex.__path__ = []  # a package: apex.contrib (the persistent layer norm) is then simply not found
    apex.optimizers = _module("apex.optimizers", FusedAdam=FusedAdam, FusedSGD=FusedSGD)
    apex.multi_tensor_apply = _module("apex.multi_tensor_apply", multi_tensor_applier=multi_tensor_applier)
    _module("amp_C", multi_tensor_l2norm=multi_tensor_l2norm, multi_tensor_scale=multi_tensor_scale)
    _module("fused_mix_prec_layer_norm_cuda", forward_affine=forward_affine, backward_affine=backward_affine)
    _module("megatron.fused_kernels", load=lambda args: None)
