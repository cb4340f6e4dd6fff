"""CUDA plumbing to CPU and gloo for NCCL, for the fork's training loop in tests (see ``sitecustomize``).

``install()`` patches ``torch.cuda`` and ``torch.distributed`` in this process only. Every patched call keeps
its meaning on a machine whose only device is the CPU: ``is_available`` says yes and ``device_count`` gives one
device per local worker (``initialize_megatron`` asserts the first and sets up model parallelism only when the
second is above 0, and checks ``local_rank == rank % device_count``), the "current device" is the CPU, ``.cuda()``
leaves a tensor or module where it is, ``t.type()`` names a CPU tensor as the GPU's, and the CUDA random generator
is a CPU ``torch.Generator`` that is seeded, read and restored exactly where the fork seeds, saves and restores the
GPU's.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist

CPU = torch.device("cpu")


class _Generators:
    """``torch.cuda.default_generators``: the one stand-in generator, whatever device index is asked for."""

    def __init__(self, generator: torch.Generator) -> None:
        self.generator = generator

    def __getitem__(self, index: object) -> torch.Generator:
        return self.generator

    def __len__(self) -> int:
        return 1


def _legacy(dtype: torch.dtype):
    """``torch.cuda.FloatTensor(...)`` and friends: the CPU legacy constructor of the same dtype."""
    cpu_type = {torch.float32: torch.FloatTensor, torch.float64: torch.DoubleTensor, torch.float16: torch.HalfTensor,
                torch.bfloat16: torch.BFloat16Tensor, torch.int32: torch.IntTensor, torch.int64: torch.LongTensor,
                torch.uint8: torch.ByteTensor}[dtype]
    return cpu_type


def _install_cuda() -> None:
    cuda = torch.cuda
    generator = torch.Generator()
    cuda.is_available = lambda: True
    cuda.device_count = lambda: int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    cuda.current_device = lambda: CPU
    cuda.set_device = lambda device: None
    cuda.synchronize = lambda device=None: None
    cuda.empty_cache = lambda: None
    for name in ("memory_allocated", "max_memory_allocated", "memory_reserved", "max_memory_reserved"):
        setattr(cuda, name, lambda device=None: 0)
    cuda.memory_stats = lambda device=None: {}
    cuda.get_rng_state = lambda device="cuda": generator.get_state()
    cuda.set_rng_state = lambda state, device="cuda": generator.set_state(state)
    cuda.manual_seed = lambda seed: generator.manual_seed(int(seed))
    cuda.manual_seed_all = cuda.manual_seed
    cuda.default_generators = _Generators(generator)
    cuda._lazy_call = lambda callable_, **kwargs: callable_()  # run now: there is no CUDA context to wait for
    for name, dtype in (("FloatTensor", torch.float32), ("DoubleTensor", torch.float64), ("HalfTensor", torch.float16),
                        ("BFloat16Tensor", torch.bfloat16), ("IntTensor", torch.int32), ("LongTensor", torch.int64),
                        ("ByteTensor", torch.uint8)):
        setattr(cuda, name, _legacy(dtype))
    torch.Tensor.cuda = lambda self, device=None, non_blocking=False, **kwargs: self
    tensor_type = torch.Tensor.type

    def type_(self, dtype=None, non_blocking=False, **kwargs):  # noqa: ANN001 - torch's signature
        """``t.type()`` names CPU tensors as the GPU's (the fork asserts ``'torch.cuda.FloatTensor'``)."""
        if dtype is None and not kwargs:
            return tensor_type(self).replace("torch.", "torch.cuda.", 1)
        return tensor_type(self, dtype, non_blocking, **kwargs)

    torch.Tensor.type = type_
    torch.nn.Module.cuda = lambda self, device=None: self


def _install_gloo() -> None:
    init = dist.init_process_group

    def init_process_group(backend=None, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003 - torch's signature
        return init("gloo" if backend in (None, "nccl") else backend, *args, **kwargs)

    dist.init_process_group = init_process_group


def install() -> None:
    _install_cuda()
    _install_gloo()
