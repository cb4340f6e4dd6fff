"""FSDP2 in the preset's set-up (scripts/configs/llama2-7b-go-rust.yaml: gradient accumulation and activation
checkpointing) on two CPU processes (gloo) gives the losses of one process, for Llama and for the families whose
masks differ: Mistral (a sliding window shorter than the rows) and Qwen2 (sliding-window and full layers)."""
import pytest
import torch

from runconfig import load_section
from runconfig.training_section import TrainingConfig
from tests.local_engine_fixtures import run_overrides, tiny_hf
from tests.test_engine_fsdp_hf import EXTRA, _losses, _run, _weights
from training.local.engine import train

# 2 micro-batches of 2 per rank on 2 ranks (4 in one process), each decoder layer recomputed in the backward pass
PRESET_SETUP = {"global_batch_size": 8, "activation_checkpointing": "true", "train_iters": 2, "save_interval": 2,
                "eval_interval": 2}


@pytest.mark.parametrize("family", ["llama", "mistral", "qwen2"])
def test_fsdp2_with_accumulation_and_activation_checkpointing_matches_one_process(tmp_path, family):
    base = tiny_hf(tmp_path, family, dropout=0.0)  # dropout masks differ by process layout; the maths must not
    one_process = run_overrides(tmp_path, base, tmp_path / "one", **{**EXTRA, **PRESET_SETUP})
    train(load_section(None, "training", TrainingConfig, one_process), say=lambda _m: None)  # in-process: cheaper
    _run(tmp_path, base, tmp_path / "fsdp", 2, fsdp="true", **PRESET_SETUP)
    one, two = _losses(tmp_path / "one"), _losses(tmp_path / "fsdp")
    assert [i for i, _ in one] == [i for i, _ in two] == [1, 2]
    for (_, a), (_, b) in zip(one, two):
        assert abs(a - b) <= 1e-4 * abs(a), (family, one, two)
    # the weights too: after one AdamW step a lost micro-batch hardly moves the loss (Adam's first step is about
    # lr x sign(gradient)), but it moves the weights it changed the sign for
    reference, sharded = _weights(tmp_path / "one" / "iter_0000002"), _weights(tmp_path / "fsdp" / "iter_0000002")
    assert sharded.keys() == reference.keys()
    for name, tensor in reference.items():
        torch.testing.assert_close(sharded[name], tensor, rtol=1e-4, atol=1e-5, msg=name)  # 1% of a step (lr 1e-3)


def test_layers_sharded_by_fsdp2_are_recomputed_in_the_backward_pass(tmp_path, monkeypatch):
    """Checkpointing set before fully_shard still recomputes each layer (a one-process gloo group stands in for the
    cluster): the losses above cannot show it, the result is the same either way."""
    import torch.distributed as dist
    from transformers.models.llama import modeling_llama

    from training.local.distributed import DistEnv, wrap_model
    from training.local.hf_family.families import decoder_layers, enable_activation_checkpointing
    from training.local.hf_family.tiny_models import random_hf_model, tiny_hf_config
    from training.local.model_init import TinyModelSpec

    calls = []
    mlp_forward = modeling_llama.LlamaMLP.forward

    def counted(self, *args, **kwargs):
        calls[-1] += 1
        return mlp_forward(self, *args, **kwargs)

    monkeypatch.setattr(modeling_llama.LlamaMLP, "forward", counted)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        for checkpointing in (False, True):
            calls.append(0)
            model = random_hf_model(tiny_hf_config("llama", 256, 0, 4, TinyModelSpec(2, 32, 4, 0, 64, 0.0)), 1)
            if checkpointing:
                enable_activation_checkpointing(model)
            runner = wrap_model(model, DistEnv(0, 2, 0, torch.device("cpu")), True, decoder_layers(model))
            runner.train()
            runner(input_ids=torch.tensor([[1, 2, 3, 4]]), use_cache=False).logits.sum().backward()
        assert calls[1] == 2 * calls[0] == 4  # 2 layers, each run again in the backward pass
    finally:
        dist.destroy_process_group()
