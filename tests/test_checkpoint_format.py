"""The fork's checkpoint layout: tracker, folder and file names, nested keys, TP/PP placement, dist-opt."""
from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import GPTBigCodeConfig, GPTBigCodeForCausalLM

from conversion.checkpoint_format import (
    CheckpointFormatError, checkpoint_file_path, discover_layout, load_checkpoint_file, optimizer_file_path,
    read_tracker, save_checkpoint_file, write_tracker,
)
from conversion import megatron_to_hf
from conversion.fork_namespace import build_fork_args
from conversion.megatron_checkpoint import read_megatron_checkpoint, write_megatron_checkpoint

H, HEADS, FFN, VOCAB, POS, LAYERS = 64, 4, 256, 512, 32, 4


def tiny_model() -> tuple[GPTBigCodeConfig, dict[str, torch.Tensor]]:
    torch.manual_seed(1)
    config = GPTBigCodeConfig(vocab_size=VOCAB, n_positions=POS, n_embd=H, n_layer=LAYERS, n_head=HEADS,
                              n_inner=FFN, multi_query=True, activation_function="gelu_pytorch_tanh",
                              bos_token_id=0, eos_token_id=0)
    model = GPTBigCodeForCausalLM(config)
    return config, {k: v.detach().clone() for k, v in model.state_dict().items() if k != "lm_head.weight"}


def test_tracker_is_written_without_newline_and_validated(tmp_path: Path) -> None:
    write_tracker(tmp_path, 250)
    assert (tmp_path / "latest_checkpointed_iteration.txt").read_bytes() == b"250"
    assert read_tracker(tmp_path) == "250"
    write_tracker(tmp_path, "release")
    assert (tmp_path / "latest_checkpointed_iteration.txt").read_bytes() == b"release"
    assert read_tracker(tmp_path) == "release"
    (tmp_path / "latest_checkpointed_iteration.txt").write_text("latest\n")
    with pytest.raises(CheckpointFormatError, match="latest_checkpointed_iteration.txt: line 1 holds 'latest'"):
        read_tracker(tmp_path)
    with pytest.raises(CheckpointFormatError, match="cannot read the tracker"):
        read_tracker(tmp_path / "nowhere")


def test_file_names_follow_the_fork(tmp_path: Path) -> None:
    assert checkpoint_file_path(tmp_path, "release", 1, 0, 2, 1) == tmp_path / "release/mp_rank_01/model_optim_rng.pt"
    assert checkpoint_file_path(tmp_path, "250", 1, 1, 4, 2) == tmp_path / "iter_0000250/mp_rank_01_001/model_optim_rng.pt"
    assert checkpoint_file_path(tmp_path, 7, 0, 2, 1, 3, dist_opt=True) == tmp_path / "iter_0000007/mp_rank_00_002/model_rng.pt"
    assert optimizer_file_path(tmp_path, 250, 1, 1, 2, 3) == tmp_path / "iter_0000250/mp_rank_01_001_003/optim.pt"
    assert optimizer_file_path(tmp_path, "release", 0, 0, 1, 0) == tmp_path / "release/mp_rank_00_000/optim.pt"


def test_written_checkpoint_has_the_fork_layout(tmp_path: Path) -> None:
    config, state = tiny_model()
    write_megatron_checkpoint(tmp_path, 30, state, config, tp=2, pp=2, opt_param_scheduler={"num_steps": 3})
    assert (tmp_path / "latest_checkpointed_iteration.txt").read_bytes() == b"30"
    assert sorted(p.name for p in (tmp_path / "iter_0000030").iterdir()) == [
        "mp_rank_00_000", "mp_rank_00_001", "mp_rank_01_000", "mp_rank_01_001"]
    first = [load_checkpoint_file(tmp_path / f"iter_0000030/mp_rank_0{t}_000/model_optim_rng.pt") for t in (0, 1)]
    last = [load_checkpoint_file(tmp_path / f"iter_0000030/mp_rank_0{t}_001/model_optim_rng.pt") for t in (0, 1)]
    assert set(first[0]) == {"args", "checkpoint_version", "iteration", "model", "opt_param_scheduler"}
    assert first[0]["checkpoint_version"] == 3.0 and first[0]["iteration"] == 30
    args = first[0]["args"]
    assert (args.num_layers, args.hidden_size, args.num_attention_heads, args.ffn_hidden_size) == (LAYERS, H, HEADS, FFN)
    assert args.attention_head_type == "multiquery" and args.padded_vocab_size == VOCAB
    assert args.max_position_embeddings == POS
    assert (args.tensor_model_parallel_size, args.pipeline_model_parallel_size) == (2, 2)
    assert args.position_embedding_type.name == "absolute"
    # 512 = 128 x tp x 2: the fork's default 128 already divides it, so the fork's own padding is a no-op.
    assert args.make_vocab_size_divisible_by == 128

    emb = first[0]["model"]["language_model"]["embedding"]
    assert emb["word_embeddings"]["weight"].shape == (VOCAB // 2, H)
    assert torch.equal(torch.cat([f["model"]["language_model"]["embedding"]["word_embeddings"]["weight"]
                                  for f in first]), state["transformer.wte.weight"])
    assert torch.equal(emb["position_embeddings"]["weight"], state["transformer.wpe.weight"])
    enc0, enc1 = first[0]["model"]["language_model"]["encoder"], last[0]["model"]["language_model"]["encoder"]
    # Layer numbers restart at 0 in each stage: stage 1 holds global layers 2 and 3 as layers.0 / layers.1.
    assert {k.split(".")[1] for k in enc1 if k.startswith("layers.")} == {"0", "1"}
    assert "final_layernorm.weight" in enc1 and "final_layernorm.weight" not in enc0
    assert "embedding" not in last[0]["model"]["language_model"]
    assert torch.equal(enc1["layers.0.input_layernorm.weight"], state["transformer.h.2.ln_1.weight"])
    # Multi-query: query split by heads across TP, key_value [2*head_dim, h] on every rank.
    c_attn = state["transformer.h.2.attn.c_attn.weight"]
    queries = [f["model"]["language_model"]["encoder"]["layers.0.self_attention.query.weight"] for f in last]
    kvs = [f["model"]["language_model"]["encoder"]["layers.0.self_attention.key_value.weight"] for f in last]
    assert queries[0].shape == (H // 2, H) and torch.equal(torch.cat(queries), c_attn[:H])
    assert kvs[0].shape == (2 * H // HEADS, H) and torch.equal(kvs[0], kvs[1]) and torch.equal(kvs[0], c_attn[H:])
    dense = [f["model"]["language_model"]["encoder"]["layers.1.self_attention.dense.weight"] for f in last]
    assert dense[0].shape == (H, H // 2)
    assert torch.equal(torch.cat(dense, dim=1), state["transformer.h.3.attn.c_proj.weight"])
    h4h = [f["model"]["language_model"]["encoder"]["layers.1.mlp.dense_4h_to_h.weight"] for f in last]
    assert torch.equal(torch.cat(h4h, dim=1), state["transformer.h.3.mlp.c_proj.weight"])
    assert torch.equal(torch.cat([f["model"]["word_embeddings_for_head"]["weight"] for f in last]),
                       state["transformer.wte.weight"])


def test_missing_rank_folder_is_named(tmp_path: Path) -> None:
    config, state = tiny_model()
    write_megatron_checkpoint(tmp_path, None, state, config, tp=2, pp=2)
    for f in (tmp_path / "release/mp_rank_01_001").iterdir():
        f.unlink()
    (tmp_path / "release/mp_rank_01_001").rmdir()
    with pytest.raises(CheckpointFormatError, match="release/mp_rank_01_001: missing"):
        discover_layout(tmp_path)


def test_save_is_atomic(tmp_path: Path) -> None:
    target = tmp_path / "release/mp_rank_00/model_optim_rng.pt"
    with pytest.raises(pickle.PicklingError, match="lambda"):  # the failure is the unpicklable value, nothing else
        save_checkpoint_file(target, {"model": {"x": torch.zeros(2)}, "bad": lambda: None})
    assert list(tmp_path.iterdir()) == []  # no temporary, and not the folders the failed write had created
    save_checkpoint_file(target, {"model": {"x": torch.ones(2)}})
    assert torch.equal(load_checkpoint_file(target)["model"]["x"], torch.ones(2))


@pytest.mark.parametrize("pp", [1, 2])
def test_distributed_optimizer_layout_is_read(tmp_path: Path, pp: int) -> None:
    config, state = tiny_model()
    write_megatron_checkpoint(tmp_path, 8, state, config, tp=2, pp=pp)
    # Rebuild the dist-opt layout: model_rng.pt plus mp_rank_XX[_YYY]_{dp:03d}/optim.pt for two dp ranks.
    # With pp=1 the optimizer folders (mp_rank_00_000) look like pipeline ranks; they hold no model file.
    for folder in sorted((tmp_path / "iter_0000008").iterdir()):  # listed before adding optim folders
        (folder / "model_optim_rng.pt").rename(folder / "model_rng.pt")
        for dp in (0, 1):
            save_checkpoint_file(folder.with_name(f"{folder.name}_{dp:03d}") / "optim.pt",
                                 {"optimizer": {"rank": folder.name, "dp": dp}})
    layout = discover_layout(tmp_path)
    assert (layout.tp, layout.pp, layout.dist_opt) == (2, pp, True)
    assert layout.model_file(1, pp - 1) == checkpoint_file_path(tmp_path, 8, 1, pp - 1, 2, pp, dist_opt=True)
    ckpt = read_megatron_checkpoint(tmp_path)
    first = "mp_rank_00" if pp == 1 else "mp_rank_00_000"
    assert ckpt.iteration == 8 and ckpt.tag == "8" and ckpt.optimizer == {"rank": first, "dp": 0}
    for name, tensor in state.items():
        assert torch.equal(ckpt.hf_state_dict[name], tensor), name
    out = megatron_to_hf.convert(tmp_path, tmp_path / "hf", progress=False)
    converted = load_file(out / "model-00001-of-00001.safetensors")
    assert all(torch.equal(converted[name], tensor) for name, tensor in state.items())


def test_read_returns_training_state(tmp_path: Path) -> None:
    config, state = tiny_model()
    rng = [{"random_rng_state": __import__("random").getstate(),
            "np_rng_state": __import__("numpy").random.RandomState(3).get_state(),
            "torch_rng_state": torch.get_rng_state()}]
    optimizer = {"state": {0: {"exp_avg": torch.ones(3)}}, "param_groups": [{"lr": 1e-3, "params": [0]}]}
    write_megatron_checkpoint(tmp_path, 12, state, config, optimizer=optimizer,
                              opt_param_scheduler={"num_steps": 96}, rng_state=rng,
                              extra_args={"consumed_train_samples": 96})
    ckpt = read_megatron_checkpoint(tmp_path)
    assert ckpt.iteration == 12 and ckpt.args.consumed_train_samples == 96
    assert torch.equal(ckpt.optimizer["state"][0]["exp_avg"], torch.ones(3))
    assert ckpt.opt_param_scheduler == {"num_steps": 96}
    assert (ckpt.rng_state[0]["np_rng_state"][1] == rng[0]["np_rng_state"][1]).all()
    assert ckpt.hf_config.n_layer == LAYERS and ckpt.hf_config.multi_query
    assert ckpt.hf_state_dict["lm_head.weight"] is ckpt.hf_state_dict["transformer.wte.weight"]


def test_untied_head_copy_is_refused(tmp_path: Path) -> None:
    config, state = tiny_model()
    write_megatron_checkpoint(tmp_path, None, state, config, tp=2, pp=2)
    path = tmp_path / "release/mp_rank_01_001/model_optim_rng.pt"
    ckpt = load_checkpoint_file(path)
    ckpt["model"]["word_embeddings_for_head"]["weight"][3, 0] += 1.0
    save_checkpoint_file(path, ckpt)
    with pytest.raises(CheckpointFormatError, match="word_embeddings_for_head.weight differs"):
        read_megatron_checkpoint(tmp_path)


def test_inconsistent_replicated_copy_is_refused(tmp_path: Path) -> None:
    config, state = tiny_model()
    write_megatron_checkpoint(tmp_path, None, state, config, tp=2, pp=1)
    path = tmp_path / "release/mp_rank_01/model_optim_rng.pt"
    ckpt = load_checkpoint_file(path)
    ckpt["model"]["language_model"]["encoder"]["layers.1.self_attention.key_value.weight"][0, 0] += 1.0
    save_checkpoint_file(path, ckpt)
    with pytest.raises(CheckpointFormatError, match=r"mp_rank_01.*layers\.1\.self_attention\.key_value\.weight differs"):
        read_megatron_checkpoint(tmp_path)


def test_vocab_is_padded_as_the_fork_pads_it() -> None:
    # The fork's _vocab_size_with_padding: round up to a multiple of make_vocab_size_divisible_by x tp, and the
    # divisor is recorded as given (not x tp). Worked out by hand: 96 -> 256 (x2=256); 49152 = 96 x 512 stays;
    # 50257 -> 393 x 128 = 50304; 515 at tp=3 with divisor 8 -> multiple 24, 22 x 24 = 528.
    for vocab, tp, divisor, padded in ((96, 2, 128, 256), (49152, 4, 128, 49152), (50257, 1, 128, 50304),
                                       (515, 3, 8, 528)):
        config = GPTBigCodeConfig(vocab_size=vocab, n_embd=64, n_head=4, multi_query=True)
        args = build_fork_args(config, tp, 1, divisible_by=divisor)
        assert (args.padded_vocab_size, args.make_vocab_size_divisible_by, args.true_vocab_size) == (
            padded, divisor, vocab), (vocab, tp)
        assert args.data_parallel_random_init is False


