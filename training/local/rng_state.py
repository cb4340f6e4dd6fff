"""Every random state the local engine depends on, captured into and restored from a checkpoint, in the fork's shape.

Dropout draws from torch's CPU (and CUDA) generator; python ``random`` and numpy are captured too, so that a
resumed run continues exactly where the killed one stopped. The checkpoint's ``rng_state`` is what the fork's
``get_rng_state`` saves (``megatron/checkpointing.py``, branch ``mtf``): a list with one dict per
data-parallel rank, each holding

* ``random_rng_state``: ``random.getstate()``, a tuple ``(3, tuple of 625 ints, None or float)``;
* ``np_rng_state``: ``np.random.get_state()``, ``('MT19937', uint32 ndarray (624,), int, int, float)``;
* ``torch_rng_state``: ``torch.get_rng_state()``, a uint8 tensor;
* ``cuda_rng_state``: a CUDA generator's state, a uint8 tensor of 16 bytes (seed, then Philox offset, both
  little-endian 64-bit). A GPU run stores its device's; a CPU run stores what the fork's seeding
  (``_set_random_seed``: ``torch.cuda.manual_seed(seed)``) leaves, seed = the run's seed, offset 0, so that
  ``torch.cuda.set_rng_state`` on the fork's GPUs accepts it;
* ``rng_tracker_states``: ``{'model-parallel-rng': state}``, the fork's tensor-parallel CUDA generator; the
  engine has none, so it is the state the fork's ``model_parallel_cuda_manual_seed`` creates (seed + 2718 +
  TP rank 0, offset 0). The fork refuses an empty dict.

The fork restores them with ``random.setstate``, ``np.random.set_state``, ``torch.set_rng_state``,
``torch.cuda.set_rng_state`` and its tracker's ``set_states``; the engine restores the first three (and the
CUDA one on a GPU). The entry loads with the safe loader (``conversion.checkpoint_format``).

    seed_everything(cfg.seed)
    entry = capture_rng_state(cfg.seed)        # dict for this rank
    restore_rng_state(entry)
"""
from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

MODEL_PARALLEL_RNG = "model-parallel-rng"  # the fork's tracker name (megatron/mpu/random.py)
MODEL_PARALLEL_SEED_OFFSET = 2718  # the fork's model_parallel_cuda_manual_seed: seed + 2718 + TP rank


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and every CUDA device) the way Megatron's ``_set_random_seed`` does."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def seeded_cuda_state(seed: int) -> torch.Tensor:
    """The 16-byte state a CUDA generator has right after ``manual_seed(seed)``: seed, then offset 0."""
    return torch.tensor(list((seed % 2**64).to_bytes(8, "little") + bytes(8)), dtype=torch.uint8)


def capture_rng_state(seed: int, device: torch.device | None = None) -> dict[str, Any]:
    """This process's entry of ``rng_state``; ``device`` a CUDA device stores that device's generator."""
    on_gpu = device is not None and device.type == "cuda" and torch.cuda.is_initialized()
    return {
        "random_rng_state": random.getstate(),
        "np_rng_state": np.random.get_state(),
        "torch_rng_state": torch.get_rng_state(),
        "cuda_rng_state": torch.cuda.get_rng_state(device) if on_gpu else seeded_cuda_state(seed),
        "rng_tracker_states": {MODEL_PARALLEL_RNG: seeded_cuda_state(seed + MODEL_PARALLEL_SEED_OFFSET)},
    }


def restore_rng_state(entry: dict[str, Any], device: torch.device | None = None) -> None:
    """Put back a state captured by ``capture_rng_state`` (raises KeyError naming a missing field)."""
    random.setstate(entry["random_rng_state"])
    np.random.set_state(entry["np_rng_state"])
    torch.set_rng_state(entry["torch_rng_state"])
    if device is not None and device.type == "cuda":
        torch.cuda.set_rng_state(entry["cuda_rng_state"], device)
