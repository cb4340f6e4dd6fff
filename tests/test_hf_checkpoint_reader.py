"""conversion.hf_checkpoint_reader: layout detection, lazy listing, zero-copy tensors, safe .bin loading."""
from __future__ import annotations

import json
import os

import pytest
import torch

from conversion.hf_checkpoint_reader import CheckpointError, HFCheckpointReader
from tests.tiny_hf_checkpoints import LAYOUTS, save_bin, save_layout, save_safetensors, stored_state_dict, tiny_model


@pytest.fixture(scope="module")
def model():
    return tiny_model(seed=3)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_lists_and_returns_the_saved_tensors(layout, model, tmp_path):
    state = stored_state_dict(model)
    folder = save_layout(state, tmp_path / layout, layout, model.config)
    with HFCheckpointReader(folder) as reader:
        assert reader.layout == layout.split("_")[0]
        assert sorted(reader.keys()) == sorted(state)
        for name, expected in state.items():
            info = reader.info(name)
            assert info.shape == tuple(expected.shape) and info.dtype == expected.dtype
            assert torch.equal(reader.get_tensor(name), expected)
        assert reader.config["model_type"] == "gpt_bigcode"
        assert reader.tied_alias("lm_head.weight") == "transformer.wte.weight"


def test_save_pretrained_folder_is_read(model, tmp_path):
    model.save_pretrained(tmp_path, max_shard_size="300KB")
    with HFCheckpointReader(tmp_path) as reader:
        assert reader.index_path.name == "model.safetensors.index.json"
        assert set(reader.keys()) == set(stored_state_dict(model))
        keys = reader.keys()
        ranks = [reader.shard_rank(k) for k in keys]
        assert ranks == sorted(ranks)  # storage order: shard by shard


@pytest.mark.parametrize("layout", ["safetensors", "bin"])
def test_dtypes_and_non_contiguous_tensors_round_trip(layout, tmp_path):
    state = {
        "bf16": torch.randn(5, 3).to(torch.bfloat16), "f16": torch.randn(7).half(), "i64": torch.arange(6),
        "flag": torch.tensor([True, False, True]), "scalar": torch.tensor(2.5), "empty": torch.zeros(0, 4),
    }
    if layout == "bin":
        state["transposed"] = torch.randn(4, 6).t()  # torch.save keeps the view: a non-contiguous tensor
        save_bin(state, tmp_path)
    else:
        save_safetensors(state, tmp_path)
    with HFCheckpointReader(tmp_path) as reader:
        for name, expected in state.items():
            assert reader.info(name).dtype == expected.dtype
            got = reader.get_tensor(name)
            assert got.dtype == expected.dtype and torch.equal(got, expected), name
            stored = expected.contiguous().view(-1).view(torch.uint8).numpy().tobytes()
            assert reader.raw_bytes(name).tobytes() == stored


def test_listing_safetensors_reads_only_the_header(tmp_path):
    save_safetensors({"w": torch.randn(256, 256)}, tmp_path)
    path = tmp_path / "model.safetensors"
    size = path.stat().st_size
    with open(path, "r+b") as handle:  # destroy the data, keep the header: listing must not notice
        handle.seek(size - 4096)
        handle.write(b"\xff" * 4096)
    with HFCheckpointReader(tmp_path) as reader:
        assert reader.info("w").shape == (256, 256) and reader.info("w").dtype == torch.float32
        assert torch.isnan(reader.get_tensor("w")[-1]).all()  # the data really was read from the file


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_bin_with_arbitrary_pickle_is_refused_without_running_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"w": torch.ones(2), "evil": _Exploit()}, tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="refused to unpickle"):
        HFCheckpointReader(tmp_path)
    assert not (tmp_path / "PWNED").exists()


def test_safetensors_preferred_over_bin_like_from_pretrained(tmp_path):
    save_safetensors({"a": torch.ones(2)}, tmp_path)
    save_bin({"b": torch.ones(2)}, tmp_path)
    assert HFCheckpointReader(tmp_path).keys() == ["a"]
    assert HFCheckpointReader(tmp_path / "pytorch_model.bin").keys() == ["b"]


def test_clear_errors_for_broken_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="no weights found; expected one of model.safetensors.index.json"):
        HFCheckpointReader(tmp_path)
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"x.weight": "gone.safetensors"}}))
    missing_shard = r'weight_map\["x.weight"\] names shard gone.safetensors, which is missing'
    with pytest.raises(CheckpointError, match=missing_shard):
        HFCheckpointReader(tmp_path)
    (tmp_path / "model.safetensors.index.json").write_text("{}")
    with pytest.raises(CheckpointError, match="weight_map"):
        HFCheckpointReader(tmp_path)
    other = tmp_path / "trunc"
    other.mkdir()
    (other / "model.safetensors").write_bytes(b"\x00\x10\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(CheckpointError, match="exceeds the file; truncated"):
        HFCheckpointReader(other)


def test_index_naming_keys_a_shard_lacks(tmp_path):
    save_safetensors({"a": torch.ones(2)}, tmp_path)
    (tmp_path / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"a": "model.safetensors", "b": "model.safetensors"}}))
    with pytest.raises(CheckpointError, match=r"maps \['b'\] to model.safetensors, but that shard lacks them"):
        HFCheckpointReader(tmp_path)


def test_tied_alias_follows_config(tmp_path):
    save_safetensors({"transformer.wte.weight": torch.ones(4, 2)}, tmp_path)
    assert HFCheckpointReader(tmp_path).tied_alias("lm_head.weight") is None  # no config: nothing to go on
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt_bigcode"}))
    assert HFCheckpointReader(tmp_path).tied_alias("lm_head.weight") == "transformer.wte.weight"
    (tmp_path / "config.json").write_text(json.dumps({"tie_word_embeddings": False}))
    assert HFCheckpointReader(tmp_path).tied_alias("lm_head.weight") is None
    # a hand-edited config that says it twice: which one wins is not the reader's guess to make
    (tmp_path / "config.json").write_text('{\n  "tie_word_embeddings": false,\n  "tie_word_embeddings": true\n}\n')
    with pytest.raises(CheckpointError, match=r"config.json:3: key 'tie_word_embeddings' appears twice"):
        HFCheckpointReader(tmp_path).tied_alias("lm_head.weight")


def test_safetensors_offsets_outside_the_file_are_refused(tmp_path):
    save_safetensors({"w": torch.randn(64, 64)}, tmp_path)
    path = tmp_path / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-100])  # truncated copy: the header promises more than the file has
    with pytest.raises(CheckpointError, match=r"tensor 'w' data_offsets \[0, 16384\] do not hold 16384 bytes"):
        HFCheckpointReader(tmp_path)


def test_legacy_torch_save_format_is_read_without_mmap(tmp_path):
    state = {"w": torch.randn(3, 4)}
    torch.save(state, tmp_path / "pytorch_model.bin", _use_new_zipfile_serialization=False)
    with HFCheckpointReader(tmp_path) as reader:
        assert torch.equal(reader.get_tensor("w"), state["w"])


def test_reader_is_a_lazy_read_only_mapping(model, tmp_path):
    state = stored_state_dict(model)
    save_layout(state, tmp_path, "bin_sharded", model.config)
    with HFCheckpointReader(tmp_path) as reader:
        assert len(reader) == len(state) and set(reader) == set(state)
        assert "lm_head.weight" not in reader and reader.get("lm_head.weight") is None
        assert torch.equal(reader["transformer.wte.weight"], state["transformer.wte.weight"])
        with pytest.raises(KeyError, match="no tensor named 'missing.weight'"):
            reader["missing.weight"]
        assert all(torch.equal(tensor, state[name]) for name, tensor in reader.items())
