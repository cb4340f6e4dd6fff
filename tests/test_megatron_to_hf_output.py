"""megatron_to_hf output folder: config (DESIGN.md 2.5), files, index, dtype, atomic replace, run config."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import AutoModelForCausalLM, AutoTokenizer, GPTBigCodeConfig, GPTBigCodeForCausalLM

from conversion.checkpoint_format import load_checkpoint_file, save_checkpoint_file
from conversion.fork_namespace import PositionEmbeddingType
from runconfig.sizes import parse_size
from conversion.megatron_checkpoint import write_megatron_checkpoint
from conversion.megatron_to_hf import convert, load_hf_model_from_megatron, main

FORK_TOKENIZER = Path(__file__).parent / "fixtures" / "fork" / "tokenizer.json"


@pytest.fixture(scope="module")
def megatron_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    torch.manual_seed(11)
    config = GPTBigCodeConfig(vocab_size=8192, n_positions=64, n_embd=32, n_layer=2, n_head=4, n_inner=96,
                              multi_query=True, activation_function="gelu_pytorch_tanh",
                              bos_token_id=50256, eos_token_id=50256)  # GPT-2 ids must not leak through
    state = {k: v.detach().clone() for k, v in GPTBigCodeForCausalLM(config).state_dict().items()
             if k != "lm_head.weight"}
    root = tmp_path_factory.mktemp("megatron")
    write_megatron_checkpoint(root, 40, state, config, tp=2, pp=1)
    return root, state


def _read_all(folder: Path, index_name: str = "model.safetensors.index.json") -> dict[str, torch.Tensor]:
    index = json.loads((folder / index_name).read_text())
    tensors = {}
    for name, file in index["weight_map"].items():
        with safe_open(str(folder / file), framework="pt") as handle:
            tensors[name] = handle.get_tensor(name)
    return tensors


def test_config_files_and_offline_loading(megatron_root, tmp_path: Path) -> None:
    root, state = megatron_root
    out = convert(root, tmp_path / "hf", tokenizer=FORK_TOKENIZER, max_shard_size="30KB", progress=False)
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "gpt_bigcode" and config["multi_query"] is True
    assert config["activation_function"] == "gelu_pytorch_tanh"
    assert config["bos_token_id"] == 0 and config["eos_token_id"] == 0  # <|endoftext|> of the fork tokenizer
    assert (config["n_inner"], config["n_embd"], config["n_layer"], config["n_head"]) == (96, 32, 2, 4)
    assert (config["vocab_size"], config["n_positions"]) == (8192, 64)
    assert config["tie_word_embeddings"] is True
    generation = json.loads((out / "generation_config.json").read_text())
    assert generation["bos_token_id"] == 0 and generation["eos_token_id"] == 0
    index = json.loads((out / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert shards == [f"model-{i:05d}-of-{len(shards):05d}.safetensors" for i in range(1, len(shards) + 1)]
    assert len(shards) > 2
    assert sorted(p.name for p in out.iterdir()) == sorted(shards + [
        "model.safetensors.index.json", "config.json", "generation_config.json", "tokenizer.json",
        "tokenizer_config.json", "special_tokens_map.json", "conversion_manifest.json"])
    tensors = _read_all(out)
    assert index["metadata"]["total_size"] == sum(t.numel() * t.element_size() for t in tensors.values())
    assert sorted(tensors) == sorted(state) and all(torch.equal(tensors[k], v) for k, v in state.items())
    for shard in shards:  # a shard closes before passing the limit; only a tensor bigger than it stands alone
        with safe_open(str(out / shard), framework="pt") as handle:
            sizes = [handle.get_tensor(k).nbytes for k in handle.keys()]
        assert sum(sizes) <= 30_000 or len(sizes) == 1
    model = AutoModelForCausalLM.from_pretrained(out)
    assert torch.equal(model.lm_head.weight, state["transformer.wte.weight"])
    tokenizer = AutoTokenizer.from_pretrained(out)
    text = "def add(a, b):\n    return a + b<|endoftext|>"
    assert tokenizer(text)["input_ids"] == Tokenizer.from_file(str(FORK_TOKENIZER)).encode(text).ids
    assert tokenizer.eos_token_id == 0


def test_bos_eos_come_from_the_tokenizer(megatron_root, tmp_path: Path) -> None:
    vocab = {"a": 0, "b": 1, "c": 2, "<|endoftext|>": 3, "[UNK]": 4}
    vocab.update({f"t{i}": i for i in range(5, 8192)})  # the model's 8192 tokens: only its own tokenizer fits
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "tokenizer.json"))
    out = convert(megatron_root[0], tmp_path / "hf", tokenizer=tmp_path / "tokenizer.json", progress=False)
    assert json.loads((out / "config.json").read_text())["eos_token_id"] == 3
    assert json.loads((out / "generation_config.json").read_text())["bos_token_id"] == 3


def test_bfloat16_output(megatron_root, tmp_path: Path) -> None:
    root, state = megatron_root
    out = convert(root, tmp_path / "hf", dtype=torch.bfloat16, progress=False)
    tensors = _read_all(out)
    assert all(t.dtype == torch.bfloat16 for t in tensors.values())
    assert all(torch.equal(tensors[k], v.to(torch.bfloat16)) for k, v in state.items())
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"


def test_stale_files_are_gone_and_failures_keep_the_old_folder(megatron_root, tmp_path: Path) -> None:
    root, _ = megatron_root
    out = convert(root, tmp_path / "hf", progress=False)  # an earlier conversion's folder, with stale files
    (out / "model-00001-of-00009.safetensors").write_bytes(b"old")
    (out / "pytorch_model.bin").write_bytes(b"old")
    convert(root, out, progress=False)
    assert not (out / "model-00001-of-00009.safetensors").exists() and not (out / "pytorch_model.bin").exists()
    before = sorted(p.name for p in out.iterdir())
    # A corrupt source (one parameter missing from a TP shard) fails and leaves the previous output as it was.
    broken = tmp_path / "broken"
    write_megatron_checkpoint(broken, None, {k: v for k, v in _read_all(out).items()},
                              GPTBigCodeConfig.from_pretrained(out), tp=2)
    shard = broken / "release/mp_rank_01/model_optim_rng.pt"
    ckpt = load_checkpoint_file(shard)
    del ckpt["model"]["language_model"]["encoder"]["layers.1.mlp.dense_4h_to_h.bias"]
    save_checkpoint_file(shard, ckpt)
    with pytest.raises(ValueError, match=r"mp_rank_01/model_optim_rng.pt: parameter .*layers\.1\.mlp\.dense_4h_to_h\.bias.* missing"):
        convert(broken, out, progress=False)
    assert sorted(p.name for p in out.iterdir()) == before
    assert not list(tmp_path.glob("*hf.tmp-*")) and not list(tmp_path.glob("*hf.old-*"))


def test_out_dir_that_replacing_would_destroy_is_refused(megatron_root, tmp_path: Path) -> None:
    root, _ = megatron_root
    before = sorted(str(p) for p in root.rglob("*"))
    for out in (root, root.parent, root / ".." / root.name):  # the checkpoint itself or a folder holding it
        with pytest.raises(ValueError, match="holds the Megatron checkpoint"):
            convert(root, out, progress=False)
    unrelated = tmp_path / "notes"
    unrelated.mkdir()
    (unrelated / "todo.txt").write_text("keep me")
    assert main(["--megatron", str(root), "--out", str(unrelated), "--no-progress"]) == 2
    assert (unrelated / "todo.txt").read_text() == "keep me"
    assert sorted(str(p) for p in root.rglob("*")) == before
    convert(root, tmp_path / "empty", progress=False)  # a new or empty folder is fine
    (tmp_path / "inside").mkdir()
    convert(root, tmp_path / "inside", progress=False)
    assert (tmp_path / "inside" / "config.json").is_file()


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("files", [
    # a Megatron data folder: *.bin files, but no model (issue 7 item 1: it used to be deleted whole)
    {"pairs_inputs_document.bin": b"\x01\x00", "pairs_inputs_document.idx": b"MMIDIDX\x00\x00",
     "pairs.jsonl": b'{"inputs": "a", "targets": "b"}\n', "tokenizer.json": b"{}", "train_data_paths.txt": b'"x"\n'},
    {"firmware.bin": b"\x7fELF", "notes.txt": b"keep me"},
    # a model folder plus a user's file: not only what a conversion writes
    {"config.json": b'{"model_type": "gpt_bigcode"}', "model.safetensors": b"x", "notes.txt": b"mine"},
    # weights without a model config
    {"config.json": b'{"name": "my settings"}', "pytorch_model.bin": b"x"},
], ids=["data_folder", "firmware", "model_plus_notes", "config_not_a_model"])
def test_out_dir_that_is_not_provably_a_model_folder_is_never_replaced(megatron_root, tmp_path, capsys, files):
    root, _ = megatron_root
    out = tmp_path / "out"
    out.mkdir()
    for name, data in files.items():
        (out / name).write_bytes(data)
    before = _snapshot(out)
    assert main(["--megatron", str(root), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a Hugging Face model folder" in err
    assert all(name in err for name in sorted(files)[:5])  # the refusal lists what is there
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary left beside it


def test_a_model_folder_written_by_a_conversion_is_replaced(megatron_root, tmp_path):
    root, _ = megatron_root
    out = tmp_path / "hf"
    convert(root, out, tokenizer=FORK_TOKENIZER, progress=False)
    (out / "model-00007-of-00009.safetensors").write_bytes(b"stale shard of an older conversion")
    assert main(["--megatron", str(root), "--out", str(out), "--no-progress"]) == 0
    assert not (out / "model-00007-of-00009.safetensors").exists()


def test_args_without_a_gpt_bigcode_equivalent_name_the_file_and_field(megatron_root, tmp_path: Path, capsys) -> None:
    _, state = megatron_root
    config = GPTBigCodeConfig(vocab_size=8192, n_positions=64, n_embd=32, n_layer=2, n_head=4, n_inner=96,
                              multi_query=True)
    write_megatron_checkpoint(tmp_path / "rotary", None, state, config, tp=2,
                              extra_args={"position_embedding_type": PositionEmbeddingType.rotary})
    assert main(["--megatron", str(tmp_path / "rotary"), "--out", str(tmp_path / "hf"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "release/mp_rank_00/model_optim_rng.pt: args: position_embedding_type" in err and "absolute" in err
    assert not (tmp_path / "hf").exists()


def test_shard_sizes_use_hugging_face_units() -> None:
    assert [parse_size(t) for t in ("2GB", "500MB", "30KB", "1GiB", "1.5 kib", "12", 7)] == [
        2 * 10**9, 500 * 10**6, 30_000, 2**30, 1536, 12, 7]
    for bad in ("2iB", "GB", "2 GBs", "-1MB"):
        with pytest.raises(ValueError, match="expected a size such as 2GB"):
            parse_size(bad)


def test_cli_reads_the_run_config_section(megatron_root, tmp_path: Path) -> None:
    root, state = megatron_root
    run_yaml = tmp_path / "run.yaml"
    run_yaml.write_text(f"conversion:\n  format: bin\n  dtype: float16\n  max_shard_size: 300KB\n"
                        f"  tokenizer: {FORK_TOKENIZER}\n")
    assert main(["--megatron", str(root), "--out", str(tmp_path / "hf"), "--config", str(run_yaml),
                 "--no-progress"]) == 0
    out = tmp_path / "hf"
    index = json.loads((out / "pytorch_model.bin.index.json").read_text())
    loaded = {}
    for file in set(index["weight_map"].values()):
        loaded.update(torch.load(out / file, weights_only=True))
    assert all(t.dtype == torch.float16 for t in loaded.values())
    assert (out / "tokenizer.json").exists()
    # A command-line flag beats the config; an unknown config key is an error naming it.
    assert main(["--megatron", str(root), "--out", str(tmp_path / "hf2"), "--config", str(run_yaml),
                 "--format", "safetensors", "--dtype", "float32", "--no-progress"]) == 0
    assert all(torch.equal(_read_all(tmp_path / "hf2")[k], v) for k, v in state.items())
    run_yaml.write_text("conversion:\n  formatt: bin\n")
    assert main(["--megatron", str(root), "--out", str(tmp_path / "hf3"), "--config", str(run_yaml)]) == 2
    assert not (tmp_path / "hf3").exists()


def test_in_memory_model_has_nothing_on_meta_and_moves(megatron_root) -> None:
    root, state = megatron_root
    model = load_hf_model_from_megatron(root, tokenizer=FORK_TOKENIZER)
    tensors = [*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)]
    assert [name for name, tensor in tensors if tensor.is_meta] == []
    # Buffers as the model's own __init__ makes them: a model built the ordinary way is the reference.
    reference = GPTBigCodeForCausalLM(model.config).eval()
    loaded = reference.load_state_dict(state, strict=False)
    assert (loaded.missing_keys, loaded.unexpected_keys) == (["lm_head.weight"], [])  # tied to wte
    expected_buffers = dict(reference.named_buffers())
    assert sorted(dict(model.named_buffers())) == sorted(expected_buffers) != []
    for name, buffer in model.named_buffers():
        assert buffer.dtype == expected_buffers[name].dtype and torch.equal(buffer, expected_buffers[name]), name
    for name, tensor in state.items():
        assert torch.equal(model.get_parameter(name), tensor), name
    assert model.lm_head.weight is model.transformer.wte.weight
    # A device move copies every tensor (a meta one raises "Cannot copy out of meta tensor"), then float64.
    model.to("cpu")
    model.to(torch.float64)
    reference.to(torch.float64)
    tokens = torch.randint(0, 8192, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(model(tokens).logits, reference(tokens).logits, rtol=0, atol=1e-10)


def test_default_dtype_is_the_checkpoints_own(megatron_root, tmp_path: Path) -> None:
    """No --dtype: a bf16 checkpoint stays bf16 (bytes copied, not rounded through fp32); --dtype still converts."""
    root, state = megatron_root
    bf16_root = tmp_path / "bf16"
    as_bf16 = {k: v.to(torch.bfloat16) for k, v in state.items()}
    write_megatron_checkpoint(bf16_root, None, as_bf16, GPTBigCodeConfig.from_pretrained(
        convert(root, tmp_path / "fp32", progress=False)), tp=2)
    assert main(["--megatron", str(bf16_root), "--out", str(tmp_path / "auto"), "--no-progress"]) == 0
    tensors = _read_all(tmp_path / "auto")
    assert all(t.dtype == torch.bfloat16 for t in tensors.values())
    assert all(torch.equal(tensors[k], v) for k, v in as_bf16.items())
    assert main(["--megatron", str(bf16_root), "--out", str(tmp_path / "f32"), "--dtype", "float32",
                 "--no-progress"]) == 0
    assert all(t.dtype == torch.float32 for t in _read_all(tmp_path / "f32").values())
