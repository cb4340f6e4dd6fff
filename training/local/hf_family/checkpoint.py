"""Checkpoints of the local engine for models the fork cannot load: Hugging Face weights plus the training state,
in the same ``SAVE/iter_XXXXXXX`` + tracker layout as the fork's, resumed exactly.

One iteration folder, built under a temporary name and renamed into place (``guardrails.atomic_folder``), then
the tracker ``latest_checkpointed_iteration.txt`` is pointed at it::

    iter_0000030/config.json, generation_config.json     the model's config (save_pretrained)
    iter_0000030/model.safetensors (or shards + index)    fp32 weights, one process or DDP      ("safetensors")
    iter_0000030/distributed/                             model and AdamW shards under FSDP2   ("distributed")
    iter_0000030/train_state.pt                           everything else, read with the safe loader

``train_state.pt``: ``format`` (``codeft.hf_family.v1``), ``layout`` (the two names above), ``iteration``,
``consumed_train_samples`` (the data position), ``args`` (the run's settings, the same names as the fork's
checkpoints record), ``opt_param_scheduler`` (``training.local.lr_schedule``), ``rng_state`` (one entry per process,
``training.local.rng_state``) and, for the safetensors layout, ``optimizer``: AdamW's state keyed by parameter
name (``torch.distributed.checkpoint.state_dict``), so it loads into any process layout.

Under FSDP2 no process gathers the model: every rank writes its own shards of the weights and of the Adam
moments with ``torch.distributed.checkpoint`` (a shared file system, as on any cluster), so memory stays that
of a shard; resuming reads them back into whatever sharding the new run has (another process count included).
A safetensors iteration folder is itself a Hugging Face model folder; ``training.export`` turns either layout
into a complete one (tokenizer, generation config).

    path = save_checkpoint(save_dir, 30, model, optimizer, env, fsdp, train_state)   # every rank calls it
    state = read_train_state(save_dir / "iter_0000030")
    model = model_from_checkpoint(folder, state); ...; restore_checkpoint(folder, state, model, optimizer)
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.distributed as dist

from conversion.checkpoint_format import (
    CheckpointFormatError, load_checkpoint_file, save_checkpoint_file, tag_dir_name, write_tracker,
)
from guardrails.atomic_folder import atomic_output_dir
from training.local.distributed import DistEnv, barrier

STATE_FILE = "train_state.pt"
FORMAT = "codeft.hf_family.v1"
SAFETENSORS, DISTRIBUTED = "safetensors", "distributed"


def is_hf_family_checkpoint(folder: Path) -> bool:
    """True for an iteration folder written here (not in the fork's layout)."""
    return (Path(folder) / STATE_FILE).is_file()


@contextlib.contextmanager
def _shared_output_dir(final: Path, env: DistEnv) -> Iterator[Path]:
    """Rank 0's ``atomic_output_dir``, its temporary path handed to every rank; renamed once all have written."""
    if not env.is_main:
        handed = [None]
        dist.broadcast_object_list(handed, src=0)
        yield Path(handed[0])
        barrier(env)
        return
    with atomic_output_dir(final) as tmp:
        if env.distributed:
            dist.broadcast_object_list([str(tmp)], src=0)
        yield tmp
        barrier(env)


def save_checkpoint(save_dir: Path, iteration: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    env: DistEnv, fsdp: bool, train_state: dict[str, Any]) -> Path | None:
    """Write ``SAVE/iter_{iteration:07d}`` and point the tracker at it; every rank calls this, rank 0 returns
    the folder. ``train_state`` (rank 0's): ``args``, ``opt_param_scheduler``, ``rng_state`` (all ranks')."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

    final = Path(save_dir) / tag_dir_name(iteration)
    entry = {"format": FORMAT, "iteration": iteration, **train_state}
    if fsdp:
        import torch.distributed.checkpoint as dcp

        weights, moments = get_state_dict(model, optimizer)  # this rank's shards (DTensors)
        with _shared_output_dir(final, env) as tmp:
            dcp.save({"model": weights, "optimizer": moments}, checkpoint_id=str(tmp / DISTRIBUTED))
            if env.is_main:
                model.config.save_pretrained(str(tmp))
                save_checkpoint_file(tmp / STATE_FILE, {**entry, "layout": DISTRIBUTED, "optimizer": None})
    elif env.is_main:  # DDP: every rank holds the same full weights and moments; one writes them
        weights, moments = get_state_dict(model, optimizer,
                                          options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        with atomic_output_dir(final) as tmp:
            model.save_pretrained(str(tmp), state_dict=weights)
            save_checkpoint_file(tmp / STATE_FILE, {**entry, "layout": SAFETENSORS, "optimizer": moments})
    barrier(env)
    if env.is_main:
        write_tracker(save_dir, iteration)
        return final
    return None


def read_train_state(folder: Path, meta: bool = False) -> dict[str, Any]:
    """``train_state.pt`` of an iteration folder (safe loader), its format and layout checked; ``meta``: its
    tensors (optimizer, RNG) on the meta device, for a reader of the other entries only."""
    state = load_checkpoint_file(Path(folder) / STATE_FILE, meta=meta)
    if state.get("format") != FORMAT or state.get("layout") not in (SAFETENSORS, DISTRIBUTED):
        raise CheckpointFormatError(f"{folder}/{STATE_FILE}: format {state.get('format')!r} layout"
                                    f" {state.get('layout')!r}, expected {FORMAT} (safetensors or distributed)")
    if state["layout"] == DISTRIBUTED and not (Path(folder) / DISTRIBUTED / ".metadata").is_file():
        raise CheckpointFormatError(f"{folder}/{DISTRIBUTED}: no .metadata; the checkpoint is incomplete")
    return state


def model_from_checkpoint(folder: Path, state: dict[str, Any]) -> torch.nn.Module:
    """The model of an iteration folder: its weights (safetensors), or its shape only (distributed: the weights
    are read by :func:`restore_checkpoint` once the model is sharded)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    if state["layout"] == SAFETENSORS:
        return AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32, attn_implementation="sdpa")
    return meta_model(AutoConfig.from_pretrained(str(folder)))


def meta_model(config: Any) -> torch.nn.Module:
    """The ``*ForCausalLM`` of ``config`` with its parameters on the meta device (no storage, no initialisation) and
    its buffers computed by the model's own code (RoPE's frequencies, which no state dict holds); a tied head is
    the embedding. No process ever holds (or initialises) the whole model: see :func:`materialize`."""
    from transformers import AutoModelForCausalLM

    from conversion.megatron_to_hf import parameters_on_meta

    with parameters_on_meta():
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation="sdpa")
    model.tie_weights()  # inside, each registration made a parameter of its own: a tied head is one again
    return model


def on_meta(model: torch.nn.Module) -> bool:
    """True while the weights have no storage yet (a distributed checkpoint's model before its shards are read)."""
    return any(p.device.type == "meta" for p in model.parameters())


def materialize(model: torch.nn.Module, device: torch.device) -> None:
    """Give meta weights (whole, or this rank's FSDP2 shards) storage on ``device``; the values come from the
    checkpoint (:func:`restore_checkpoint`). The buffers, which the model's code computed (RoPE's frequencies),
    are kept: ``to_empty`` would leave them as garbage."""
    buffers = {name: buffer.detach().clone() for name, buffer in model.named_buffers()}
    model.to_empty(device=device)
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            buffer.copy_(buffers[name])
    if hasattr(model, "tie_weights"):  # a whole model: to_empty gave a tied head storage of its own; FSDP2's
        model.tie_weights()            # shards (the engine's wrapper, which has no tie_weights) keep the tie


def weights_only(folder: Path) -> torch.nn.Module:
    """The model of an iteration folder with its weights, whatever the layout (a start from another run's save
    folder: ``training.load``)."""
    state = read_train_state(folder)
    model = model_from_checkpoint(folder, state)
    if state["layout"] == DISTRIBUTED:  # the weights were on the meta device: take the read tensors as they are
        model.load_state_dict(full_weights(folder, state), strict=False, assign=True)
        model.tie_weights()  # a tied head is the embedding again
        if on_meta(model):
            raise CheckpointFormatError(f"{folder}/{DISTRIBUTED}: some weights of the model are missing")
    return model


def restore_checkpoint(folder: Path, state: dict[str, Any], model: torch.nn.Module,
                       optimizer: torch.optim.Optimizer) -> None:
    """Put the optimizer state (and, for the distributed layout, the weights) into the (sharded) run; every
    rank calls this, after the model is wrapped and the optimizer built."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions, get_state_dict, set_optimizer_state_dict, set_state_dict,
    )

    if state["layout"] == SAFETENSORS:
        set_optimizer_state_dict(model, optimizer, state["optimizer"], options=StateDictOptions(full_state_dict=True))
        return
    import torch.distributed.checkpoint as dcp

    weights, moments = get_state_dict(model, optimizer)  # the templates: this run's shards
    dcp.load({"model": weights, "optimizer": moments}, checkpoint_id=str(Path(folder) / DISTRIBUTED))
    set_state_dict(model, optimizer, model_state_dict=weights, optim_state_dict=moments)


def full_weights(folder: Path, state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The whole model's weights of an iteration folder, on the CPU, in one process (``training.export``); of a
    distributed checkpoint only the model's entries are read (not the Adam moments, twice its size)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if state["layout"] == DISTRIBUTED:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.metadata import TensorStorageMetadata

        reader = dcp.FileSystemReader(str(folder / DISTRIBUTED))
        entries = reader.read_metadata().state_dict_metadata
        prefix = "model."
        weights = {name[len(prefix):]: torch.empty(tuple(meta.size), dtype=meta.properties.dtype)
                   for name, meta in entries.items()
                   if name.startswith(prefix) and isinstance(meta, TensorStorageMetadata)}
        dcp.load({"model": weights}, storage_reader=reader, no_dist=True)
        return weights
    names = sorted(folder.glob("model*.safetensors"))
    if not names:
        raise CheckpointFormatError(f"{folder}: no model*.safetensors")
    weights = {}
    for name in names:
        weights.update(load_file(str(name)))
    return weights
