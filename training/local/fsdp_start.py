"""The starting weights of a fresh FSDP2 run, read by one process per job instead of by every process.

Used by the local engine (``training.local.engine``; not a command). Loading ``training.load`` in every process
before sharding costs each process the whole model in host memory (Llama-2-7B in fp32: 27 GB, so 216 GB on a
node of 8 GPUs) for a moment, only to keep 1/N of it. Instead rank 0 alone loads it (any start
``training.model_init.load_start_model`` takes: a Hugging Face folder, another run's checkpoint, a Megatron
release) and sends its config to the other ranks, which build the same model on the meta device (parameters
without storage; buffers such as RoPE's frequencies, which no state dict holds, computed by the model's code; a
tied head tied). Once ``fully_shard`` has split the model, those ranks give their shards storage and
``torch.distributed.checkpoint.state_dict.set_model_state_dict(full_state_dict=True, broadcast_from_rank0=True)``
sends rank 0's weights one tensor at a time, each rank keeping its shard: no process but rank 0 ever holds more
than a tensor of the whole.

    model, where, start = start_model(path, env, sharded=cfg.fsdp and env.distributed)
    ...  # wrap_model(...) shards it; hf_family.checkpoint.materialize gives the meta ranks' shards storage
    broadcast_start_weights(model, start)   # every rank, when start is not None
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist

from training.local.distributed import DistEnv
from training.local.hf_family.checkpoint import meta_model
from training.local.model_init import load_start_model


def start_model(path: Path, env: DistEnv, sharded: bool) -> tuple[torch.nn.Module, str, dict | None]:
    """The starting model, a line saying where it came from, and the weights to broadcast once it is sharded:
    rank 0's full state dict (references to the loaded model's tensors, kept alive past the sharding), ``{}`` on
    the other ranks (their model is on the meta device), None when ``sharded`` is false (every process loads)."""
    if not sharded:
        return (*load_start_model(path), None)
    loaded = [None]
    if env.is_main:
        model, where = load_start_model(path)
        loaded = [model.config]
    dist.broadcast_object_list(loaded, src=0)  # the others wait while rank 0 reads the weights
    if env.is_main:
        return model, where, dict(model.state_dict())
    return meta_model(loaded[0]), f"{path}: the model's config from rank 0; weights broadcast once sharded", {}


def broadcast_start_weights(model: torch.nn.Module, start: dict) -> None:
    """Rank 0's full weights into every rank's shards of the sharded ``model`` (the causal LM, not the FSDP
    wrapper); every rank calls this, after the meta ranks' shards have storage. Strict: a key missing on either
    side is an error."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    set_model_state_dict(model, start, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
    start.clear()  # rank 0's references: the full tensors can go
