"""training.wandb: the engine's metrics and config in an offline Weights & Biases run under SAVE/wandb, the same
run continued on resume; disabled by default (nothing imported, nothing written)."""
import json
import struct
import sys

import pytest

from runconfig import load_section
from runconfig.training_section import TrainingConfig, WandbConfig
from tests.local_engine_fixtures import run_overrides, tiny_hf
from training.local.engine import train
from training.local.wandb_tracker import open_wandb


def _records(path):
    """The protobuf records of a ``.wandb`` file (W&B's 7-byte header, then LevelDB's log format)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, block, pending = path.read_bytes(), 7, 32768, b""
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        left = block - pos % block
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7]) if left >= 7 else (0, 0, 0)
        if left < 7 or (length == 0 and kind == 0):  # the rest of a block is padding
            pos += left
            continue
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):  # a whole record (FULL, or the LAST of FIRST/MIDDLE/LAST)
            record = pb.Record()
            record.ParseFromString(pending)
            yield record


def _items(items):
    """``{key: value}`` of W&B's items (a key with a slash is stored as its parts)."""
    return {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items}


def _history(path):
    return [_items(r.history.item) for r in _records(path) if r.WhichOneof("record_type") == "history"]


def test_offline_run_logs_the_metrics_and_resume_continues_it(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="wandb is not installed (pip install codeft[wandb])")
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "data"))
    base, save = tiny_hf(tmp_path, "llama", dropout=0.0), tmp_path / "run"
    extra = {"wandb.mode": "offline", "wandb.project": "go-rust", "tensorboard": False, "peak_flops": 1e12,
             "save_interval": 2, "eval_interval": 2, "lr_decay_samples": 12}
    train(load_section(None, "training", TrainingConfig, run_overrides(tmp_path, base, save, train_iters=2, **extra)),
          say=lambda _m: None)
    train(load_section(None, "training", TrainingConfig, run_overrides(tmp_path, base, save, train_iters=3, **extra)),
          say=lambda _m: None)
    run_id = (save / "wandb" / "run_id").read_text().strip()
    runs = sorted((save / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb"))
    assert len(runs) == 2  # the resumed job wrote into the same W&B run (same id)
    first, second = _history(runs[0]), _history(runs[1])
    train_rows = [r for r in first + second if "train/loss" in r]
    assert [r["iteration"] for r in train_rows] == [1, 2, 3]
    metrics = [json.loads(x) for x in (save / "metrics.jsonl").read_text().splitlines()]
    assert [r["train/loss"] for r in train_rows] == [m["loss"] for m in metrics if m["kind"] == "train"]
    for key in ("train/lr", "train/grad_norm", "train/tokens_per_s", "train/tflops_per_device", "train/mfu"):
        assert all(key in r for r in train_rows), key
    assert [r["iteration"] for r in first + second if "valid/loss" in r] == [0, 2, 3]
    started = next(r.run for r in _records(runs[0]) if r.WhichOneof("record_type") == "run")
    assert (started.run_id, started.project, started.display_name) == (run_id, "go-rust", "run")
    config = _items(started.config.update)
    assert config["train_iters"] == 2 and config["wandb"]["mode"] == "offline"


def test_disabled_by_default_imports_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # any import of wandb would now fail
    assert TrainingConfig().wandb == WandbConfig(mode="disabled")
    assert open_wandb(WandbConfig(), tmp_path, {}) is None and not (tmp_path / "wandb").exists()
    with pytest.raises(ValueError, match="training.wandb.mode=offline needs the wandb package"):
        open_wandb(WandbConfig(mode="offline"), tmp_path, {})


def test_a_run_without_the_package_is_refused_before_it_reads_or_writes_anything(tmp_path, monkeypatch):
    base, save = tiny_hf(tmp_path, "llama", dropout=0.0), tmp_path / "run"
    monkeypatch.setitem(sys.modules, "wandb", None)
    cfg = load_section(None, "training", TrainingConfig,
                       run_overrides(tmp_path, base, save, train_iters=2, **{"wandb.mode": "offline"}))
    messages = []
    with pytest.raises(ValueError, match="training.wandb.mode=offline needs the wandb package"):
        train(cfg, say=messages.append)
    assert not messages  # refused before the model was loaded (the engine says "loaded: ...")
    assert not save.exists()  # no index maps, no training_config.json, no record left behind
