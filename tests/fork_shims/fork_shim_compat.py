"""Names the fork (2023) imports that newer torch and numpy removed, for the fork's loop in tests.

``install()``: ``torch._six`` (gone since torch 2.0; ``optimizer/clip_grads.py`` imports ``inf`` from it) and
``numpy.float`` (gone since numpy 1.24; ``data/indexed_dataset.py`` lists it as the dtype of code 6). Both are
the aliases they were: ``math.inf`` and the builtin ``float``. And ``megatron.model.vision.knn_monitor``, which
``megatron/training.py`` imports for DINO vision pretraining only: the real one imports torchvision, whose
PyPI wheels are built against CUDA torch and fail to load beside a CPU torch; the stand-in's
``compute_feature_bank`` refuses to run (a text run never calls it).
"""
from __future__ import annotations

import math
import sys
import types

import numpy
import torch


def install() -> None:
    six = types.ModuleType("torch._six")
    six.inf = math.inf
    six.string_classes = (str, bytes)
    sys.modules["torch._six"] = six
    torch._six = six
    if not hasattr(numpy, "float"):
        numpy.float = float
    knn = types.ModuleType("megatron.model.vision.knn_monitor")
    knn.compute_feature_bank = _vision_only
    sys.modules[knn.__name__] = knn


def _vision_only(*args: object, **kwargs: object) -> None:
    raise NotImplementedError("DINO vision pretraining is not available under the CPU test shims")
