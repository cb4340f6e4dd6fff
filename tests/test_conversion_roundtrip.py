"""HF -> Megatron (TP in {1, 2, 4}, PP in {1, 2}) -> HF gives back every tensor bit for bit."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, GPTBigCodeConfig, GPTBigCodeForCausalLM

from conversion import hf_to_megatron, megatron_to_hf
from conversion.checkpoint_format import discover_layout, read_tracker
from tests.tiny_hf_checkpoints import LAYOUTS, save_layout, stored_state_dict, tiny_model



@pytest.fixture(scope="module")
def hf_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(7)
    config = GPTBigCodeConfig(vocab_size=512, n_positions=32, n_embd=64, n_layer=4, n_head=4, n_inner=256,
                              multi_query=True, activation_function="gelu_pytorch_tanh", bos_token_id=0,
                              eos_token_id=0)
    model = GPTBigCodeForCausalLM(config)
    with torch.no_grad():  # layer norms and biases are constants at init; make them random so mix-ups show
        for name, param in model.named_parameters():
            if param.dim() == 1:
                param.copy_(torch.randn_like(param))
    out = tmp_path_factory.mktemp("hf")
    model.save_pretrained(out)
    return out


def _hf_tensors(folder: Path) -> dict[str, torch.Tensor]:
    index = folder / "model.safetensors.index.json"
    files = set(json.loads(index.read_text())["weight_map"].values()) if index.exists() else {"model.safetensors"}
    tensors: dict[str, torch.Tensor] = {}
    for name in files:
        tensors.update(load_file(folder / name))
    return tensors


@pytest.mark.parametrize("pp", [1, 2])
@pytest.mark.parametrize("tp", [1, 2, 4])
def test_roundtrip_is_bitwise(hf_model_dir: Path, tmp_path: Path, tp: int, pp: int) -> None:
    hf_to_megatron.convert(hf_model_dir, tmp_path / "megatron", tp=tp, pp=pp)
    assert read_tracker(tmp_path / "megatron") == "release"
    layout = discover_layout(tmp_path / "megatron")
    assert (layout.tp, layout.pp, layout.dist_opt) == (tp, pp, False)
    megatron_to_hf.convert(tmp_path / "megatron", tmp_path / "back", max_shard_size="60KB", progress=False)
    original, back = _hf_tensors(hf_model_dir), _hf_tensors(tmp_path / "back")
    original.pop("lm_head.weight", None)  # tied: HF saves it only as wte
    assert sorted(back) == sorted(original)
    for name, tensor in original.items():
        assert back[name].dtype == tensor.dtype and torch.equal(back[name], tensor), name
    assert len(list((tmp_path / "back").glob("model-*-of-*.safetensors"))) > 1


def test_cli_roundtrip_with_bin_shards(hf_model_dir: Path, tmp_path: Path) -> None:
    assert hf_to_megatron.main(["--hf", str(hf_model_dir), "--out", str(tmp_path / "m"), "--tp", "2", "--pp", "2"]) == 0
    assert megatron_to_hf.main(["--megatron", str(tmp_path / "m"), "--out", str(tmp_path / "b"), "--format", "bin",
                                "--max-shard-size", "100KB", "--no-progress"]) == 0
    index = json.loads((tmp_path / "b/pytorch_model.bin.index.json").read_text())
    files = sorted(set(index["weight_map"].values()))
    assert files[0] == f"pytorch_model-00001-of-{len(files):05d}.bin" and len(files) > 1
    assert not list((tmp_path / "b").glob("*.safetensors"))
    back: dict[str, torch.Tensor] = {}
    for name in files:
        back.update(torch.load(tmp_path / "b" / name, weights_only=True))
    original = _hf_tensors(hf_model_dir)
    assert sorted(back) == sorted(k for k in original if k != "lm_head.weight")  # tied: stored once, as wte
    for name, tensor in back.items():
        assert torch.equal(tensor, original[name]), name
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "b")  # transformers reads the .bin shards we wrote
    assert torch.equal(loaded.transformer.h[3].mlp.c_proj.weight, original["transformer.h.3.mlp.c_proj.weight"])
    assert loaded.lm_head.weight is loaded.transformer.wte.weight
    # And the HF folder made of .bin shards goes back to Megatron and to HF again, still bitwise.
    hf_to_megatron.convert(tmp_path / "b", tmp_path / "m2", tp=4, pp=1)
    megatron_to_hf.convert(tmp_path / "m2", tmp_path / "s", progress=False)
    again = _hf_tensors(tmp_path / "s")
    assert sorted(again) == sorted(back)
    assert all(torch.equal(again[name], tensor) for name, tensor in back.items())


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_hf_layout_converts(layout: str, tmp_path: Path) -> None:
    # Single or sharded, safetensors or torch .bin: hf_to_megatron reads them all (the shared HF reader).
    model = tiny_model(seed=5)
    state = stored_state_dict(model)
    save_layout(state, tmp_path / "hf", layout, model.config)
    hf_to_megatron.convert(tmp_path / "hf", tmp_path / "megatron", tp=2, pp=2)
    megatron_to_hf.convert(tmp_path / "megatron", tmp_path / "back", progress=False)
    back = _hf_tensors(tmp_path / "back")
    assert sorted(back) == sorted(state)
    for name, tensor in back.items():
        assert torch.equal(tensor, state[name]), name


def test_non_divisible_tp_is_refused(hf_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not divisible by tensor parallel size 3"):
        hf_to_megatron.convert(hf_model_dir, tmp_path / "m", tp=3)
    assert not (tmp_path / "m" / "release").exists()


def test_source_inside_the_replaced_release_is_refused(hf_model_dir: Path, tmp_path: Path) -> None:
    # A Hugging Face folder kept in ROOT/release would be deleted when release/ is swapped for the new one.
    shutil.copytree(hf_model_dir, tmp_path / "root" / "release" / "hf")
    for source in (tmp_path / "root" / "release", tmp_path / "root" / "release" / "hf"):
        with pytest.raises(ValueError, match="lies inside .*release, which the conversion replaces"):
            hf_to_megatron.convert(source, tmp_path / "root")
    assert (tmp_path / "root" / "release" / "hf" / "config.json").is_file()


def test_missing_tensor_is_named_with_its_folder(tmp_path: Path, capsys) -> None:
    model = tiny_model(seed=2)
    state = stored_state_dict(model)
    del state["transformer.h.1.mlp.c_fc.bias"]
    save_layout(state, tmp_path / "hf", LAYOUTS[0], model.config)
    assert hf_to_megatron.main(["--hf", str(tmp_path / "hf"), "--out", str(tmp_path / "m"), "--tp", "2"]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'hf'}: no tensor named 'transformer.h.1.mlp.c_fc.bias'" in err
    assert not (tmp_path / "m").exists()  # not even an empty root


def test_config_without_a_megatron_equivalent_names_file_and_field(tmp_path: Path, capsys) -> None:
    model = tiny_model(seed=3)
    save_layout(stored_state_dict(model), tmp_path / "hf", LAYOUTS[0], model.config)
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    (tmp_path / "hf" / "config.json").write_text(json.dumps({**config, "activation_function": "relu"}))
    assert hf_to_megatron.main(["--hf", str(tmp_path / "hf"), "--out", str(tmp_path / "m")]) == 2
    assert f"{tmp_path / 'hf' / 'config.json'}: activation_function 'relu' has no Megatron" in capsys.readouterr().err
    assert not (tmp_path / "m" / "release").exists()


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_training_save_folder_is_never_repointed_to_release(hf_model_dir: Path, tmp_path: Path, capsys) -> None:
    # Issue 7 item 3: --out pointed at a run's save folder used to add release/ and repoint the tracker from 12
    # to release, so a later export silently shipped the untrained weights.
    save = tmp_path / "run"
    hf_to_megatron.convert(hf_model_dir, tmp_path / "base")
    shutil.copytree(tmp_path / "base" / "release", save / "iter_0000012")
    (save / "latest_checkpointed_iteration.txt").write_text("12")
    (save / "metrics.jsonl").write_text('{"iteration": 12}\n')
    before = _files(save)
    assert hf_to_megatron.main(["--hf", str(hf_model_dir), "--out", str(save)]) == 2
    err = capsys.readouterr().err
    assert "names iteration 12" in err and err.count("\n") == 1
    assert _files(save) == before and not (save / "release").exists()


@pytest.mark.parametrize("kind", ["hf_folder", "user_files"])
def test_an_out_holding_something_else_is_refused(hf_model_dir: Path, tmp_path: Path, capsys, kind) -> None:
    out = tmp_path / "out"
    if kind == "hf_folder":
        shutil.copytree(hf_model_dir, out)
    else:
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    before = _files(out)
    assert hf_to_megatron.main(["--hf", str(hf_model_dir), "--out", str(out)]) == 2
    assert "not a Megatron release checkpoint root" in capsys.readouterr().err
    assert _files(out) == before


def test_a_release_root_written_by_a_conversion_is_replaced(hf_model_dir: Path, tmp_path: Path) -> None:
    hf_to_megatron.convert(hf_model_dir, tmp_path / "base", tp=1)
    hf_to_megatron.convert(hf_model_dir, tmp_path / "base", tp=2)
    assert sorted(p.name for p in (tmp_path / "base" / "release").iterdir()) == ["mp_rank_00", "mp_rank_01"]
