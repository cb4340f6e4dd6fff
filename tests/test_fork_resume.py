"""Engine checkpoints the fork can resume: key by key and type by type against a checkpoint the fork saved
(tests/fixtures/fork/checkpoint/tp1pp1), loaded by stand-ins of the fork's loaders (its FP32Optimizer's
Adam, its OptimizerParamScheduler's keys, its RNG restore calls), and the engine still resumes exactly."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import GPTBigCodeConfig, GPTBigCodeForCausalLM

from conversion.checkpoint_format import load_checkpoint_file
from conversion.fork_optimizer import (
    fork_needs_no_load_optim, fork_resume_entry, from_fork_optimizer, read_fork_resume, to_fork_optimizer,
)
from conversion.megatron_checkpoint import read_megatron_checkpoint
from runconfig import load_section
from runconfig.training_section import TrainingConfig
from tests.local_engine_fixtures import run_overrides
from training.engine import train
from training.optim_setup import build_adamw

FORK_FILE = Path(__file__).parent / "fixtures/fork/checkpoint/tp1pp1/iter_0000007/mp_rank_00/model_optim_rng.pt"
VOCAB, PADDED, LAYERS, HIDDEN, SEED = 8195, 8320, 2, 32, 1234  # 8195 -> next multiple of 128 is 8320
# The fork model's named_parameters() order within a layer (megatron/model/transformer.py, branch mtf).
FORK_LAYER_ORDER = ("input_layernorm.weight", "input_layernorm.bias", "self_attention.query.weight",
                    "self_attention.query.bias", "self_attention.key_value.weight", "self_attention.key_value.bias",
                    "self_attention.dense.weight", "self_attention.dense.bias", "post_attention_layernorm.weight",
                    "post_attention_layernorm.bias", "mlp.dense_h_to_4h.weight", "mlp.dense_h_to_4h.bias",
                    "mlp.dense_4h_to_h.weight", "mlp.dense_4h_to_h.bias")


@pytest.fixture(scope="module")
def fork_ckpt() -> dict:
    return load_checkpoint_file(FORK_FILE)


def _start_model(folder: Path) -> Path:
    config = GPTBigCodeConfig(vocab_size=VOCAB, n_positions=256, n_embd=HIDDEN, n_layer=LAYERS, n_head=4,
                              multi_query=True, activation_function="gelu_pytorch_tanh", bos_token_id=0,
                              eos_token_id=0, pad_token_id=4)
    torch.manual_seed(5)
    GPTBigCodeForCausalLM(config).save_pretrained(folder)
    return folder


def _run(tmp: Path, base: Path, save: Path, iters: int) -> None:
    cfg = load_section(None, "training", TrainingConfig, run_overrides(
        tmp, base, save, train_iters=iters, save_interval=1, eval_interval=100, seq_length=64, global_batch_size=4,
        lr_warmup_samples=2, lr_decay_samples=8, seed=SEED))  # one window for both lengths (a resume keeps its own)
    train(cfg, say=lambda _m: None)


@pytest.fixture(scope="module")
def engine_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(start HF folder, a 2-iteration run, the same run killed after 1 iteration and resumed)."""
    tmp = tmp_path_factory.mktemp("fork_resume")
    base = _start_model(tmp / "hf")
    _run(tmp, base, tmp / "straight", 2)
    _run(tmp, base, tmp / "resumed", 1)
    _run(tmp, base, tmp / "resumed", 2)
    return base, tmp / "straight", tmp / "resumed"


def _ckpt(save: Path) -> dict:
    return load_checkpoint_file(save / "iter_0000002/mp_rank_00/model_optim_rng.pt")


def _fork_named_parameters(model: dict) -> list[tuple[str, torch.Tensor]]:
    """Stand-in for the fork's GPT model.named_parameters() at TP=1 PP=1, read from the checkpoint's model."""
    lm = model["language_model"]
    names = [("embedding.word_embeddings.weight", lm["embedding"]["word_embeddings"]["weight"]),
             ("embedding.position_embeddings.weight", lm["embedding"]["position_embeddings"]["weight"])]
    for layer in range(LAYERS):
        names += [(f"encoder.layers.{layer}.{s}", lm["encoder"][f"layers.{layer}.{s}"]) for s in FORK_LAYER_ORDER]
    names += [(f"encoder.final_layernorm.{s}", lm["encoder"][f"final_layernorm.{s}"]) for s in ("weight", "bias")]
    return names


def _fork_param_groups(named: list[tuple[str, torch.Tensor]]) -> list[dict]:
    """Stand-in for the fork's get_param_groups: no weight decay on biases and 1-D (norm) parameters."""
    params = [(name, torch.nn.Parameter(t.clone())) for name, t in named]
    decay = [p for n, p in params if not (n.endswith(".bias") or p.dim() == 1)]
    no_decay = [p for n, p in params if n.endswith(".bias") or p.dim() == 1]
    return [{"params": decay, "wd_mult": 1.0, "lr_mult": 1.0}, {"params": no_decay, "wd_mult": 0.0, "lr_mult": 1.0}]


class FusedAdamStandIn(torch.optim.Optimizer):
    """apex FusedAdam's bookkeeping (group-level step, bias_correction, exp_avg/exp_avg_sq), plain torch math."""

    def __init__(self, params, lr=1e-3, bias_correction=True, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, bias_correction=bias_correction, betas=betas, eps=eps,
                                      weight_decay=weight_decay))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            group["step"] = group.get("step", 0) + 1
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                state = self.state[p]
                if len(state) == 0:
                    state["exp_avg"], state["exp_avg_sq"] = torch.zeros_like(p), torch.zeros_like(p)
                state["exp_avg"].mul_(beta1).add_(p.grad, alpha=1 - beta1)
                state["exp_avg_sq"].mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)


def test_top_level_keys_and_args_follow_the_fork(engine_run, fork_ckpt) -> None:
    ours = _ckpt(engine_run[1])
    assert set(fork_ckpt) <= set(ours)
    assert set(ours) - set(fork_ckpt) == {"fork_resume", "local_engine"}
    assert type(ours["checkpoint_version"]) is float and type(ours["iteration"]) is int and ours["iteration"] == 2
    theirs, mine = vars(fork_ckpt["args"]), vars(ours["args"])
    missing = sorted(set(theirs) - set(mine))
    assert not missing, f"args lack the fork's {missing}"
    for name, value in theirs.items():  # same type, unless one side is an unset (None) option
        if value is not None and mine[name] is not None:
            assert type(mine[name]) is type(value), (name, mine[name], value)
    args = ours["args"]
    assert args.data_parallel_random_init is False and args.consumed_train_samples == 8
    assert (args.padded_vocab_size, args.make_vocab_size_divisible_by, args.true_vocab_size) == (PADDED, 128, VOCAB)
    assert args.position_embedding_type is type(fork_ckpt["args"].position_embedding_type).absolute
    assert ours["model"]["language_model"]["embedding"]["word_embeddings"]["weight"].shape == (PADDED, HIDDEN)


def test_rng_state_has_the_forks_structure_and_its_restore_calls_accept_it(engine_run, fork_ckpt) -> None:
    ours, theirs = _ckpt(engine_run[1])["rng_state"], fork_ckpt["rng_state"]
    assert type(ours) is list and len(ours) == 1  # one data-parallel rank
    entry, reference = ours[0], theirs[0]
    assert list(entry) == list(reference)
    for key in entry:
        assert type(entry[key]) is type(reference[key]), key
    version, internal, gauss = entry["random_rng_state"]
    assert version == 3 and type(internal) is tuple and len(internal) == 625 and gauss is None
    assert all(type(x) is int for x in internal)
    name, keys, pos, has_gauss, cached = entry["np_rng_state"]
    assert name == "MT19937" and keys.dtype == np.uint32 and keys.shape == (624,)
    assert [type(x) for x in (pos, has_gauss, cached)] == [type(x) for x in reference["np_rng_state"][2:]]
    assert entry["torch_rng_state"].dtype == torch.uint8 and entry["torch_rng_state"].shape == \
        reference["torch_rng_state"].shape
    assert list(entry["rng_tracker_states"]) == list(reference["rng_tracker_states"]) == ["model-parallel-rng"]
    # a CUDA generator's state is 16 bytes: seed then Philox offset (the fixture's 5056 bytes came from a CPU shim)
    for state, seed in ((entry["cuda_rng_state"], SEED), (entry["rng_tracker_states"]["model-parallel-rng"],
                                                          SEED + 2718)):
        assert state.dtype == torch.uint8 and state.shape == (16,)
        assert bytes(state.tolist()) == seed.to_bytes(8, "little") + bytes(8)
    # the fork's own restore calls (megatron/checkpointing.py load_checkpoint) accept every entry
    random.setstate(entry["random_rng_state"])
    np.random.set_state(entry["np_rng_state"])
    torch.set_rng_state(entry["torch_rng_state"])
    assert random.getstate() == entry["random_rng_state"]


def test_optimizer_is_the_forks_fp32_optimizer_state(engine_run, fork_ckpt) -> None:
    ours = _ckpt(engine_run[1])
    optimizer = ours["optimizer"]
    assert set(optimizer) == set(fork_ckpt["optimizer"]) == {"state", "param_groups"}
    named = _fork_named_parameters(ours["model"])
    groups = _fork_param_groups(named)
    assert [len(g["params"]) for g in optimizer["param_groups"]] == [len(g["params"]) for g in groups] == \
        [2 + 5 * LAYERS, 9 * LAYERS + 2]
    reference_keys = set(fork_ckpt["optimizer"]["param_groups"][0])
    for saved, wd_mult in zip(optimizer["param_groups"], (1.0, 0.0)):
        assert reference_keys <= set(saved) and saved["bias_correction"] is True and saved["step"] == 2
        assert (saved["wd_mult"], saved["lr_mult"]) == (wd_mult, 1.0)
    assert optimizer["param_groups"][0]["weight_decay"] > 0 and optimizer["param_groups"][1]["weight_decay"] == 0
    ids = [i for g in optimizer["param_groups"] for i in g["params"]]
    assert ids == list(range(len(named)))
    params = [p for g in groups for p in g["params"]]
    for index, param in zip(ids, params):  # the fork's parameter shapes, padded vocab and split c_attn included
        state = optimizer["state"][index]
        assert set(state) == {"exp_avg", "exp_avg_sq", "step"}
        assert state["exp_avg"].shape == state["exp_avg_sq"].shape == param.shape, index
        assert state["exp_avg"].dtype == torch.float32 and float(state["step"]) == 2.0
    assert torch.count_nonzero(optimizer["state"][0]["exp_avg"][VOCAB:]) == 0  # padding rows: zero moments
    for adam in (torch.optim.AdamW(_fork_param_groups(named)), FusedAdamStandIn(_fork_param_groups(named))):
        adam.load_state_dict(optimizer)  # what FP32Optimizer.load_state_dict does
        for group in adam.param_groups:
            for p in group["params"]:
                p.grad = torch.ones_like(p)
        adam.step()  # shapes agree with the parameters, and the step continues
        assert adam.param_groups[1]["wd_mult"] == 0.0
    assert adam.param_groups[0]["step"] == 3  # apex counts on from the saved group step


def test_scheduler_has_the_forks_keys_and_types(engine_run, fork_ckpt) -> None:
    ours, theirs = _ckpt(engine_run[1])["opt_param_scheduler"], fork_ckpt["opt_param_scheduler"]
    assert list(ours) == list(theirs)
    assert {k: type(v) for k, v in ours.items()} == {k: type(v) for k, v in theirs.items()}
    assert ours["num_steps"] == 8 and ours["lr_warmup_steps"] == 2 and ours["lr_decay_steps"] == 8
    assert ours["start_wd"] == ours["end_wd"] == 0.1 and ours["wd_incr_style"] == "constant"


def test_fork_resume_entry_tells_the_launcher_when_to_skip_the_optimizer(engine_run) -> None:
    entry = read_fork_resume(engine_run[1])
    assert entry == {"load_optim": True, "optimizer_class": "FP32Optimizer", "reason": None,
                     "trained_dtype": "float32"}
    assert fork_needs_no_load_optim(entry, False, False) is None
    assert "--bf16" in fork_needs_no_load_optim(entry, True, False)
    assert "--use-distributed-optimizer" in fork_needs_no_load_optim(entry, False, True)
    lora = fork_resume_entry("LoRA run", "bfloat16")
    assert lora["load_optim"] is False and fork_needs_no_load_optim(lora, False, False) == "LoRA run"
    assert fork_needs_no_load_optim(None, True, True) is None  # saved by the fork itself


def test_engine_resumes_exactly_from_the_fork_structure(engine_run) -> None:
    a, b = read_megatron_checkpoint(engine_run[1]), read_megatron_checkpoint(engine_run[2])
    assert a.hf_config.vocab_size == VOCAB and a.hf_state_dict["transformer.wte.weight"].shape == (VOCAB, HIDDEN)
    for name, tensor in a.hf_state_dict.items():
        assert torch.equal(tensor, b.hf_state_dict[name]), name
    for index, state in a.optimizer["state"].items():
        for key, value in state.items():
            assert torch.equal(value, b.optimizer["state"][index][key]), (index, key)
    for x, y in zip(a.rng_state[0]["np_rng_state"], b.rng_state[0]["np_rng_state"]):
        assert np.array_equal(x, y)
    assert torch.equal(a.rng_state[0]["torch_rng_state"], b.rng_state[0]["torch_rng_state"])


def test_fork_optimizer_round_trip_is_exact() -> None:
    config = GPTBigCodeConfig(vocab_size=101, n_positions=8, n_embd=16, n_layer=2, n_head=2, multi_query=True)
    model = GPTBigCodeForCausalLM(config)
    cfg = type("Cfg", (), dict(weight_decay=0.1, adam_beta1=0.9, adam_beta2=0.95, adam_eps=1e-8))
    adam = build_adamw(model, cfg)
    model(torch.randint(0, 101, (1, 8)), labels=torch.randint(0, 101, (1, 8))).loss.backward()
    adam.step()
    engine_state = adam.state_dict()
    fork = to_fork_optimizer(engine_state, hidden_size=16, padded_vocab=128)
    assert fork["state"][0]["exp_avg"].shape == (128, 16)
    query, key_value = fork["state"][2]["exp_avg"], fork["state"][3]["exp_avg"]  # layer 0 c_attn.weight, split
    assert query.shape == (16, 16) and key_value.shape == (16, 16)
    back = from_fork_optimizer(fork, build_adamw(model, cfg).state_dict(), hidden_size=16, vocab_size=101)
    assert back["param_groups"] == engine_state["param_groups"]
    assert back["state"].keys() == engine_state["state"].keys()
    for index, state in engine_state["state"].items():
        for key, value in state.items():
            assert torch.equal(back["state"][index][key], value), (index, key)
    with pytest.raises(ValueError, match="param groups"):
        from_fork_optimizer({"state": {}, "param_groups": fork["param_groups"][:1]}, adam.state_dict(), 16, 101)
