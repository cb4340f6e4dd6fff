"""FSDP2 on two CPU processes (gloo) trains a Llama as one process does, and its sharded checkpoints (torch's
distributed checkpoint, one file per rank) resume exactly, under FSDP2 again or in one process."""
import json
import shutil
import subprocess

import pytest
import torch

from tests.local_engine_fixtures import PYTHON, run_overrides, subprocess_env, tiny_hf
from training.local.hf_family.checkpoint import full_weights, read_train_state

EXTRA = {"train_iters": 4, "save_interval": 2, "eval_interval": 2, "lr_decay_samples": 16, "tensorboard": False}


def _run(tmp, base, save, processes, **extra):
    launcher = [PYTHON, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc_per_node",
                str(processes)] if processes > 1 else [PYTHON]
    done = subprocess.run([*launcher, "-m", "training.finetune", *run_overrides(tmp, base, save, **{**EXTRA, **extra})],
                          env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _losses(save):
    records = [json.loads(x) for x in (save / "metrics.jsonl").read_text().splitlines()]
    return [(r["iteration"], r["loss"]) for r in records if r["kind"] == "train"]


def _weights(folder):
    return full_weights(folder, read_train_state(folder))


def _rewind(src, dst, iteration):
    """A copy of the save folder as if the run had stopped after ``iteration``."""
    shutil.copytree(src, dst)
    for folder in dst.glob("iter_*"):
        if int(folder.name[5:]) > iteration:
            shutil.rmtree(folder)
    (dst / "latest_checkpointed_iteration.txt").write_text(str(iteration))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fsdp_hf")
    base = tiny_hf(tmp, "llama", dropout=0.0)  # dropout masks differ by process layout; the maths must not
    _run(tmp, base, tmp / "one", 1)
    _run(tmp, base, tmp / "fsdp", 2, fsdp="true")
    return tmp, base


def test_two_fsdp2_processes_match_one(runs):
    tmp, _ = runs
    one, two = _losses(tmp / "one"), _losses(tmp / "fsdp")
    assert [i for i, _ in one] == [i for i, _ in two] == list(range(1, 5))
    for (_, a), (_, b) in zip(one, two):
        assert abs(a - b) <= 1e-4 * abs(a)
    folder = tmp / "fsdp" / "iter_0000004"
    assert sorted(p.name for p in (folder / "distributed").iterdir()) == [".metadata", "__0_0.distcp", "__1_0.distcp"]
    state = read_train_state(folder)
    assert state["layout"] == "distributed" and state["optimizer"] is None and len(state["rng_state"]) == 2
    reference, sharded = _weights(tmp / "one" / "iter_0000004"), _weights(folder)
    assert sharded.keys() == reference.keys()
    for name, tensor in reference.items():
        torch.testing.assert_close(sharded[name], tensor, rtol=1e-4, atol=1e-5, msg=name)  # 1% of a step (lr 1e-3)


def test_sharded_checkpoint_resumes_exactly_under_fsdp2(runs):
    tmp, base = runs
    _rewind(tmp / "fsdp", tmp / "fsdp_resumed", 2)
    done = _run(tmp, base, tmp / "fsdp_resumed", 2, fsdp="true")
    assert "data position iteration 2 / 8 samples" in done.stdout
    assert _losses(tmp / "fsdp_resumed") == _losses(tmp / "fsdp")
    a, b = _weights(tmp / "fsdp" / "iter_0000004"), _weights(tmp / "fsdp_resumed" / "iter_0000004")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_sharded_checkpoint_resumes_in_one_process(runs):
    tmp, base = runs
    _rewind(tmp / "fsdp", tmp / "fsdp_then_one", 2)
    done = _run(tmp, base, tmp / "fsdp_then_one", 1)
    assert "this run has 1" not in done.stdout  # fewer processes than RNG entries: nothing is borrowed
    reference = _weights(tmp / "one" / "iter_0000004")
    resumed = _weights(tmp / "fsdp_then_one" / "iter_0000004")  # a single process writes safetensors again
    assert read_train_state(tmp / "fsdp_then_one" / "iter_0000004")["layout"] == "safetensors"
    for name, tensor in reference.items():
        torch.testing.assert_close(resumed[name], tensor, rtol=1e-4, atol=1e-5, msg=name)


def test_a_tied_head_survives_sharded_checkpoints(tmp_path):
    """StarCoder2 ties its head to the embeddings: a distributed checkpoint's model is built on the meta device,
    sharded, given storage and read back, and resumes exactly, under FSDP2 or in one process."""
    from training.local.model_init import load_start_model

    base = tiny_hf(tmp_path, "starcoder2", dropout=0.0)
    extra = {"train_iters": 2, "save_interval": 1, "eval_interval": 2, "lr_decay_samples": 8}
    _run(tmp_path, base, tmp_path / "fsdp", 2, fsdp="true", **extra)
    _rewind(tmp_path / "fsdp", tmp_path / "again", 1)
    _run(tmp_path, base, tmp_path / "again", 2, fsdp="true", **extra)
    assert _losses(tmp_path / "again") == _losses(tmp_path / "fsdp")
    a, b = _weights(tmp_path / "fsdp" / "iter_0000002"), _weights(tmp_path / "again" / "iter_0000002")
    assert all(torch.equal(a[k], b[k]) for k in a)
    _rewind(tmp_path / "fsdp", tmp_path / "single", 1)
    _run(tmp_path, base, tmp_path / "single", 1, **extra)
    model, where = load_start_model(tmp_path / "single")  # a safetensors checkpoint again, loaded weights-only
    assert model.lm_head.weight is model.model.embed_tokens.weight and "starcoder2" in where
    for name, tensor in a.items():
        torch.testing.assert_close(model.state_dict()[name], tensor, rtol=1e-4, atol=1e-5, msg=name)
    sharded, _ = load_start_model(tmp_path / "fsdp")  # a distributed checkpoint, loaded weights-only
    assert sharded.lm_head.weight is sharded.model.embed_tokens.weight
    assert all(torch.equal(sharded.state_dict()[k], v) for k, v in a.items())


def test_bf16_policy_computes_in_bfloat16_over_float32_master_weights(tmp_path):
    """The GPU default (bf16): each FSDP2 unit is gathered in bfloat16 for its forward pass, while the shards the
    optimizer updates stay float32 (a one-process gloo group stands in for the cluster)."""
    import torch.distributed as dist

    from training.local.distributed import DistEnv, wrap_model
    from training.local.hf_family.families import decoder_layers
    from training.local.hf_family.tiny_models import random_hf_model, tiny_hf_config
    from training.local.model_init import TinyModelSpec

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        seen = {}
        for bf16 in (False, True):
            model = random_hf_model(tiny_hf_config("llama", 256, 0, 4, TinyModelSpec(2, 32, 4, 0, 64, 0.0)), 1)
            projection = model.model.layers[0].self_attn.q_proj
            projection.register_forward_pre_hook(lambda module, _args, key=bf16: seen.__setitem__(key, module.weight.dtype))
            runner = wrap_model(model, DistEnv(0, 2, 0, torch.device("cpu")), True, decoder_layers(model), bf16=bf16)
            runner(input_ids=torch.tensor([[1, 2, 3, 4]]), use_cache=False).logits.float().sum().backward()
            assert all(p.dtype == torch.float32 for p in model.parameters())  # the sharded master weights
            assert all(p.grad.dtype == torch.float32 for p in model.parameters())
        assert seen == {False: torch.float32, True: torch.bfloat16}
    finally:
        dist.destroy_process_group()
