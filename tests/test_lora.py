"""LoRA through peft: only adapters train, the checkpoint is a plain model equal to base + B @ A * alpha / r."""
import pytest
import torch

from conversion.megatron_checkpoint import read_megatron_checkpoint
from runconfig import load_section
from runconfig.training_section import TrainingConfig
from tests.local_engine_fixtures import run_overrides, tiny_release
from training.local.engine import train
from training.local.finetune import main as finetune_main

RANK, ALPHA = 4, 8
TARGETS = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")


def _cfg(tmp_path, base, qlora=False, save=None, **extra):
    lora = f"{{enabled: true, rank: {RANK}, alpha: {ALPHA}, dropout: 0.0, qlora: {str(qlora).lower()}}}"
    values = {"lora": lora, "lr": 1e-2, "lr_warmup_samples": 0, "tensorboard": "false", **extra}
    return load_section(None, "training", TrainingConfig,
                        run_overrides(tmp_path, base, save or tmp_path / "lora_run", **values))


def test_lora_trains_adapters_and_saves_a_merged_plain_model(tmp_path):
    base = tiny_release(tmp_path, dropout=0.0)
    result = train(_cfg(tmp_path, base, train_iters=4, save_interval=4, eval_interval=2), say=lambda _m: None)
    assert result.valid_losses[-1][1] < result.valid_losses[0][1]

    start = read_megatron_checkpoint(base).hf_state_dict
    saved = read_megatron_checkpoint(tmp_path / "lora_run")
    assert set(saved.hf_state_dict) == set(start)  # plain GPT-BigCode names: no lora_ / base_layer keys
    adapters = saved.extra["local_engine"]["lora_adapters"]
    assert saved.optimizer is None and saved.extra["fork_resume"]["load_optim"] is False
    changed = 0
    for name, weight in saved.hf_state_dict.items():
        module = name.rsplit(".", 1)[0]
        if name.endswith(".weight") and module.split(".", 3)[-1] in TARGETS:
            a = adapters[f"base_model.model.{module}.lora_A.default.weight"]
            b = adapters[f"base_model.model.{module}.lora_B.default.weight"]
            expected = start[name] + (b @ a) * (ALPHA / RANK)
            torch.testing.assert_close(weight, expected, rtol=0, atol=1e-6)
            delta = weight - start[name]
            assert torch.linalg.matrix_rank(delta) <= RANK
            changed += int(delta.abs().max() > 0)
        else:  # everything that is not an adapted weight (embeddings, norms, biases) is frozen
            assert torch.equal(weight, start[name]), name
    assert changed == 2 * 4  # 2 layers x (c_attn, attn c_proj, c_fc, mlp c_proj)

    resumed = train(_cfg(tmp_path, base, train_iters=5, save_interval=5, eval_interval=5), say=lambda _m: None)
    assert resumed.iteration == 5 and len(resumed.train_losses) == 1


def test_qlora_on_cpu_stops_with_a_clear_message(tmp_path, capsys):
    base = tiny_release(tmp_path, dropout=0.0)
    with pytest.raises(RuntimeError, match="needs a CUDA GPU"):
        train(_cfg(tmp_path, base, qlora=True, device="cpu"), say=lambda _m: None)
    # the command line turns it into exit status 2 and the message, without a traceback
    lora = f"{{enabled: true, rank: {RANK}, alpha: {ALPHA}, qlora: true}}"
    assert finetune_main(run_overrides(tmp_path, base, tmp_path / "cli", lora=lora, device="cpu")) == 2
    assert "error: training.lora.qlora=true needs a CUDA GPU" in capsys.readouterr().err


def test_lora_resume_equals_an_uninterrupted_run(tmp_path):
    """Stop after 2 of 4 iterations and resume: the losses and the saved weights equal one run of 4, bit for bit.

    The decay window is fixed (lr_decay_samples) so that the short first leg has the same schedule as the long run.
    """
    base = tiny_release(tmp_path, dropout=0.1)  # dropout too: the resumed RNG state must match as well
    common = {"lr_decay_samples": 16, "eval_interval": 100, "valid_split_file": '""'}

    def run(save, iters):
        return train(_cfg(tmp_path, base, train_iters=iters, save_interval=2, save=save, **common), say=lambda _m: None)

    whole = run(tmp_path / "whole", 4)
    first = run(tmp_path / "split", 2)
    resumed = run(tmp_path / "split", 4)
    assert [i for i, _ in first.train_losses + resumed.train_losses] == [1, 2, 3, 4]
    assert first.train_losses + resumed.train_losses == whole.train_losses  # exact floats, as on CPU
    a = read_megatron_checkpoint(tmp_path / "whole")
    b = read_megatron_checkpoint(tmp_path / "split")
    assert a.iteration == b.iteration == 4
    for name, weight in a.hf_state_dict.items():
        assert torch.equal(weight, b.hf_state_dict[name]), name
    adapters_a, adapters_b = (c.extra["local_engine"]["lora_adapters"] for c in (a, b))
    for name, adapter in adapters_a.items():
        assert torch.equal(adapter, adapters_b[name]), name
