"""Checkpoints load without the fork and without running code; what we write, the fork can load."""
from __future__ import annotations

import argparse
import io
import os
import pickletools
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from conversion.checkpoint_format import UnsafeCheckpointError, load_checkpoint_file, save_checkpoint_file, write_tracker
from conversion.fork_namespace import ModelType, PositionEmbeddingType
from conversion.megatron_checkpoint import read_megatron_checkpoint

# The fork's megatron/model/enums.py, as a throwaway package standing in for an installed fork.
FAKE_FORK_ENUMS = """
import enum
class ModelType(enum.Enum):
    encoder_or_decoder = 1
    encoder_and_decoder = 2
class AttnMaskType(enum.Enum):
    padding = 1
    causal = 2
    prefix = 3
    custom = 4
class PositionEmbeddingType(enum.Enum):
    rotary = 1
    absolute = 2
    alibi = 3
"""


def _megatron_modules() -> dict[str, object]:
    return {name: module for name, module in sys.modules.items() if name == "megatron" or name.startswith("megatron.")}


@pytest.fixture
def fake_fork(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # megatron-core (a dev dependency) owns the top-level "megatron" package; set it aside meanwhile.
    saved = _megatron_modules()
    for name in saved:
        del sys.modules[name]
    root = tmp_path / "fork_src"
    (root / "megatron/model").mkdir(parents=True)
    (root / "megatron/__init__.py").write_text("")
    (root / "megatron/model/__init__.py").write_text("")
    (root / "megatron/model/enums.py").write_text(FAKE_FORK_ENUMS)
    monkeypatch.syspath_prepend(str(root))
    import importlib

    importlib.invalidate_caches()
    enums = importlib.import_module("megatron.model.enums")
    yield enums
    for name in _megatron_modules():
        del sys.modules[name]
    sys.modules.update(saved)


def _globals_in(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as archive:
        data = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
    out = io.StringIO()
    pickletools.dis(data, out=out)
    return [line.split("GLOBAL", 1)[1].strip().strip("'") for line in out.getvalue().splitlines() if "GLOBAL" in line]


def test_malicious_pickle_is_refused_and_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "release/mp_rank_00/model_optim_rng.pt"
    path.parent.mkdir(parents=True)
    torch.save({"args": Payload(), "model": {}}, path)
    write_tracker(tmp_path, "release")
    with pytest.raises(UnsafeCheckpointError) as info:
        load_checkpoint_file(path)
    message = str(info.value)
    assert str(path) in message and "system" in message and "refused" in message
    with pytest.raises(UnsafeCheckpointError):
        read_megatron_checkpoint(tmp_path)
    assert not marker.exists()
    # Control: the payload is live. Plain unpickling (what the protection replaces) runs it.
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_unknown_fork_class_is_refused_by_name(tmp_path: Path, fake_fork) -> None:
    path = tmp_path / "x.pt"
    torch.save({"args": argparse.Namespace(mask=fake_fork.AttnMaskType.causal, pos=fake_fork.PositionEmbeddingType.absolute)}, path)
    # AttnMaskType is allowed (a stand-in exists); a class the allow-list does not know is not.
    assert load_checkpoint_file(path)["args"].pos is PositionEmbeddingType.absolute
    fake_fork.Unknown = type("Unknown", (), {"__module__": "megatron.model.enums"})
    torch.save({"args": argparse.Namespace(x=fake_fork.Unknown())}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"megatron\.model\.enums\.Unknown") as info:
        load_checkpoint_file(path)
    assert "add_safe_globals" not in str(info.value) and "safe_globals(" not in str(info.value)  # no unsafe advice


def test_fork_pickled_checkpoint_loads_without_the_fork(tmp_path: Path, fake_fork) -> None:
    path = tmp_path / "model_optim_rng.pt"
    args = argparse.Namespace(num_layers=2, position_embedding_type=fake_fork.PositionEmbeddingType.absolute,
                              model_type=fake_fork.ModelType.encoder_or_decoder, params_dtype=torch.bfloat16,
                              init_method_std=np.float64(0.02))
    rng = {"np_rng_state": np.random.RandomState(5).get_state(), "torch_rng_state": torch.get_rng_state()}
    torch.save({"args": args, "model": {"w": torch.arange(3.0)}, "rng_state": [rng]}, path)  # plain pickle, as the fork
    for name in _megatron_modules():
        del sys.modules[name]
    sys.path[:] = [p for p in sys.path if "fork_src" not in p]
    loaded = load_checkpoint_file(path, mmap=True)
    assert not _megatron_modules()  # the fork (or anything named megatron) was never imported
    assert loaded["args"].position_embedding_type is PositionEmbeddingType.absolute
    assert loaded["args"].model_type is ModelType.encoder_or_decoder
    assert loaded["args"].params_dtype is torch.bfloat16
    assert loaded["args"].init_method_std == 0.02
    assert (loaded["rng_state"][0]["np_rng_state"][1] == rng["np_rng_state"][1]).all()


def test_written_args_name_the_fork_classes_and_the_fork_loads_them(tmp_path: Path, fake_fork) -> None:
    path = tmp_path / "model_optim_rng.pt"
    args = argparse.Namespace(position_embedding_type=PositionEmbeddingType.absolute,
                              model_type=ModelType.encoder_or_decoder, hidden_size=64)
    save_checkpoint_file(path, {"args": args, "model": {"w": torch.ones(2)}})
    names = _globals_in(path)
    assert "megatron.model.enums PositionEmbeddingType" in names
    assert "megatron.model.enums ModelType" in names
    assert not any("conversion" in n for n in names)
    # The "installed fork" unpickles it with plain pickle and gets its own enum members back.
    loaded = torch.load(path, weights_only=False)
    assert loaded["args"].position_embedding_type is fake_fork.PositionEmbeddingType.absolute
    assert loaded["args"].model_type is fake_fork.ModelType.encoder_or_decoder
