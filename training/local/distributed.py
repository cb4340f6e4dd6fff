"""Data-parallel plumbing for the local engine: one process, or several under ``torchrun``.

``torchrun`` sets RANK / WORLD_SIZE / LOCAL_RANK; then the process group is gloo on CPU and NCCL on
GPU, and the model is wrapped in DDP (or sharded with FSDP2 when ``training.fsdp`` is set, for
models whose weights, gradients and Adam state do not fit on one device). Data sharding follows the
fork's ``MegatronPretrainingSampler``: rank ``r`` takes micro-batch slice ``r`` of every
``micro_batch_size * world_size`` consecutive samples.

    env = init_distributed(cfg.device)
    model = wrap_model(model, env, fsdp=cfg.fsdp)
    ...
    close_distributed(env)
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Iterable, Iterator

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistEnv:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def pick_device(requested: str, local_rank: int) -> torch.device:
    """``auto``: this process's GPU when there is one, else the CPU; anything else is taken as given."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device("cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"training.device is {requested!r} but no CUDA device is visible; use device=cpu")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank % torch.cuda.device_count())
    return device


def init_distributed(requested_device: str = "auto") -> DistEnv:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(requested_device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistEnv(rank, world_size, local_rank, device)


def close_distributed(env: DistEnv) -> None:
    if env.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()


def mean_across_ranks(value: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """The mean of a tensor over all data-parallel ranks (a copy; the input is untouched)."""
    if not env.distributed:
        return value.clone()
    reduced = value.detach().clone()
    dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
    return reduced / env.world_size


def wrap_model(
    model: torch.nn.Module, env: DistEnv, fsdp: bool = False, blocks: Iterable[torch.nn.Module] = (),
    bf16: bool = False,
) -> torch.nn.Module:
    """DDP (or FSDP2, one shard group per block in ``blocks``) around ``model`` under torchrun; else ``model``.

    ``bf16`` (the GPU default): FSDP2 gathers each unit's parameters in bfloat16 for compute and reduces the
    gradients in float32 into the float32 shards the optimizer updates (the master weights).
    """
    if not env.distributed:
        if fsdp:
            raise ValueError("training.fsdp needs several processes: launch with torchrun --nproc_per_node N")
        return model
    if fsdp:
        from torch.distributed.fsdp import fully_shard

        policy = fsdp_mixed_precision(bf16)
        options = {"mp_policy": policy} if policy is not None else {}
        for block in blocks:  # one shard group per transformer block, then the rest
            fully_shard(block, **options)
        fully_shard(model, **options)
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [env.device.index] if env.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def fsdp_mixed_precision(bf16: bool) -> object | None:
    """FSDP2's policy: bfloat16 compute over float32 master weights, float32 gradient reduction; None = fp32."""
    if not bf16:
        return None
    from torch.distributed.fsdp import MixedPrecisionPolicy

    return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)


def no_grad_sync(model: torch.nn.Module, sync: bool) -> contextlib.AbstractContextManager:
    """Skip DDP's gradient all-reduce on all but the last micro-batch of an accumulation window."""
    if hasattr(model, "set_requires_gradient_sync"):  # FSDP2: reduce-scatter only on the last one
        model.set_requires_gradient_sync(sync)
        return contextlib.nullcontext()
    if sync or not hasattr(model, "no_sync"):
        return contextlib.nullcontext()
    return model.no_sync()


def rank_micro_batches(
    consumed: int, global_batch: int, micro_batch: int, env: DistEnv
) -> Iterator[list[int]]:
    """Sample indices of this rank's micro-batches for the global batch starting at ``consumed``."""
    stride = micro_batch * env.world_size
    if global_batch % stride:
        raise ValueError(
            f"global_batch_size {global_batch} is not a multiple of micro_batch_size x processes = {stride}"
        )
    for start in range(consumed, consumed + global_batch, stride):
        first = start + env.rank * micro_batch
        yield list(range(first, first + micro_batch))


def _param_names(optimizer: torch.optim.Optimizer) -> list[str]:
    """Parameter names in the optimizer's own index order (``build_adamw`` stores them per group)."""
    return [name for group in optimizer.param_groups for name in group["names"]]


def full_optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, fsdp: bool) -> dict | None:
    """The optimizer's plain ``state_dict`` (index-keyed, full tensors). Under FSDP2 every rank must call
    this (the shards are gathered) and only rank 0 gets the result (None elsewhere)."""
    if not fsdp:
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    by_name = get_optimizer_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if not by_name:  # with cpu_offload the full state lands on rank 0 only
        return None
    names = _param_names(optimizer)
    plain = optimizer.state_dict()  # param_groups with integer ids, same order as names
    plain["state"] = {i: by_name["state"][n] for i, n in enumerate(names) if n in by_name["state"]}
    return plain


def load_optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict, fsdp: bool) -> None:
    """Put a plain (full, index-keyed) optimizer state back; under FSDP2 each rank keeps its shard."""
    if not fsdp:
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    names = _param_names(optimizer)
    by_name = {"state": {names[i]: value for i, value in state["state"].items()},
               "param_groups": [{**g, "params": [names[i] for i in g["params"]]} for g in state["param_groups"]]}
    set_optimizer_state_dict(model, optimizer, optim_state_dict=by_name,
                             options=StateDictOptions(full_state_dict=True))


def full_model_state(model: torch.nn.Module, fsdp: bool) -> dict[str, torch.Tensor]:
    """Full (unsharded) CPU weights; under FSDP2 every rank must call this."""
    if not fsdp:
        return {k: v.detach().to("cpu") for k, v in model.state_dict().items()}
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
