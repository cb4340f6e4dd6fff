"""Import-time shims that let the BigCode fork's own ``finetune_mtf.py`` train on CPU, for tests only.

Python imports ``sitecustomize`` at start-up from the first folder of ``sys.path`` that holds one; the fork test
(``tests/test_fork_training.py``) puts this folder on the job's ``PYTHONPATH`` through its site env file, so the
fork's workers load it and nothing else does. Importing it only registers a finder: the shims are installed
when the process first imports the fork's ``megatron`` package (or ``apex``, as preflight's
``training.fork_probe`` does), so the job's other Python processes (``training.launch``, ``torchrun``, the
``python3 -m pybind11`` of the fork's ``make``) are left untouched.

The shims (each listed with why; none changes the model's or the optimizer's math, and no file of the fork is
edited):

* ``fork_shim_cuda``: CUDA plumbing to CPU. ``initialize_megatron`` asserts ``torch.cuda.is_available()`` and
  sets up model parallelism only when ``torch.cuda.device_count() > 0``; tensors and modules are moved with
  ``.cuda()`` and made on ``torch.cuda.current_device()``; the legacy ``torch.cuda.FloatTensor``-style
  constructors; the CUDA RNG calls of ``mpu.random`` (a CPU ``torch.Generator`` stands in for the GPU's);
  memory statistics report 0; ``torch.cuda.synchronize``/``empty_cache`` do nothing.
* ``fork_shim_cuda``: NCCL -> gloo: ``torch.distributed.init_process_group(backend='nccl')`` uses gloo (the only
  CPU backend).
* ``fork_shim_apex``: apex stand-ins: ``FusedAdam`` (torch's AdamW: the same decoupled-weight-decay Adam
  with bias correction), ``FusedSGD`` (torch's SGD), ``multi_tensor_applier`` with ``amp_C``'s
  ``multi_tensor_l2norm``/``multi_tensor_scale`` (the gradient norm and scaling in plain torch), and the
  ``fused_mix_prec_layer_norm_cuda`` extension (torch's own layer-norm forward and backward).
* ``fork_shim_apex``: ``megatron.fused_kernels`` with a ``load`` that builds nothing: the fork compiles CUDA
  softmax kernels with nvcc at start-up; on CPU in fp32 its models never call them (they fall back to
  torch's softmax when the input is not fp16/bf16).
* ``fork_shim_compat``: names newer torch and numpy removed: ``torch._six.inf`` (``clip_grads.py``) and
  ``numpy.float`` (``indexed_dataset.py``), as the aliases they were; ``megatron.model.vision.knn_monitor``
  (DINO only; the real one needs torchvision, whose PyPI wheels do not load beside a CPU torch).
* after ``megatron.initialize`` loads, its ``_warmup_jit_function`` does nothing: it allocates random tensors on
  ``device='cuda'`` to compile the JIT fusions for the GPU; the fused functions themselves run unchanged.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys


def _after_initialize(module) -> None:  # noqa: ANN001 - a module object
    module._warmup_jit_function = lambda: None


class _StandIn(importlib.abc.Loader):
    """Loads a stand-in module that ``install()`` has registered in ``sys.modules`` (apex, amp_C, ...)."""

    def create_module(self, spec):  # noqa: ANN001
        return sys.modules[spec.name]

    def exec_module(self, module) -> None:  # noqa: ANN001
        pass


class _ForkShims(importlib.abc.MetaPathFinder):
    """Installs the shims at the first import of the fork (or of apex, as preflight's probe does); patches
    ``megatron.initialize`` once it is loaded."""

    triggers = ("megatron", "apex", "amp_C", "fused_mix_prec_layer_norm_cuda")
    after_import = {"megatron.initialize": _after_initialize}
    installed = False

    def find_spec(self, name, path=None, target=None):  # noqa: ANN001 - the finder protocol
        if name in self.triggers and not self.installed:
            type(self).installed = True
            import fork_shim_apex
            import fork_shim_compat
            import fork_shim_cuda

            fork_shim_cuda.install()
            fork_shim_apex.install()
            fork_shim_compat.install()
        if name in sys.modules and name != "megatron":  # a stand-in: hand the import system the registered module
            return importlib.machinery.ModuleSpec(name, _StandIn())
        patch = self.after_import.get(name)
        if patch is None:
            return None  # the fork's own modules are found as usual
        spec = importlib.machinery.PathFinder.find_spec(name, path, target)
        if spec is not None and spec.loader is not None:
            run = spec.loader.exec_module

            def exec_module(module, run=run) -> None:  # noqa: ANN001
                run(module)
                patch(module)

            spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _ForkShims())
