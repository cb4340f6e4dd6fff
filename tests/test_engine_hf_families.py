"""The local engine on Llama, Mistral, Qwen2 and StarCoder2 (tiny random models, in-process): both modes,
Hugging Face checkpoints in the iter_XXXXXXX + tracker layout, exact resume with the schedule extended."""
import json
import shutil
from pathlib import Path

import pytest
import torch

from runconfig import load_section
from runconfig.training_section import TrainingConfig
from tests.local_engine_fixtures import run_overrides, tiny_hf
from training.local.engine import train

FIM_DIR = Path(__file__).parent / "fixtures" / "fork_fim"
FAMILIES = ["llama", "mistral", "qwen2", "starcoder2"]


def _cfg(tmp, base, save, **extra):
    extra.setdefault("tensorboard", False)
    return load_section(None, "training", TrainingConfig, run_overrides(tmp, base, save, **extra))


def _pretrain_cfg(tmp, base, save):
    return _cfg(tmp, base, save, mode="pretrain", tokenizer=FIM_DIR / "tokenizer.json", seq_length=128,
                train_iters=2, save_interval=2, eval_interval=2, lr_warmup_samples=0,
                **{"pretrain.data_path": FIM_DIR / "code_content_document"})


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


@pytest.mark.parametrize("family", FAMILIES)
def test_family_trains_in_both_modes_and_saves_hugging_face_checkpoints(tmp_path, family):
    from transformers import AutoModelForCausalLM

    base = tiny_hf(tmp_path, family, dropout=0.0)
    messages = []
    tuned = train(_cfg(tmp_path, base, tmp_path / "ft", train_iters=3, save_interval=3), say=messages.append)
    assert any(f"({family}): weights only" in m for m in messages)
    assert tuned.valid_losses[-1][1] < tuned.valid_losses[0][1]
    folder = tmp_path / "ft" / "iter_0000003"
    assert (tmp_path / "ft" / "latest_checkpointed_iteration.txt").read_text() == "3"
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "generation_config.json",
                                                       "model.safetensors", "train_state.pt"]
    saved = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)  # an HF folder as it stands
    start = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    assert saved.config.model_type == family
    moved = [name for name, p in saved.state_dict().items() if not torch.equal(p, start.state_dict()[name])]
    assert len(moved) == len(saved.state_dict())  # every weight trained (the untied heads included)
    pre = train(_pretrain_cfg(tmp_path, base, tmp_path / "pt"), say=lambda _m: None)
    assert [i for i, _ in pre.train_losses] == [1, 2] and all(torch.isfinite(torch.tensor(pre.train_losses)).all(1))
    assert (tmp_path / "pt" / "iter_0000002" / "model.safetensors").is_file()


@pytest.mark.parametrize("family", ["llama", "starcoder2", "qwen2"])  # untied, tied head, two kinds of layers
def test_stopped_at_3_and_extended_to_6_equals_an_uninterrupted_6(tmp_path, family):
    """Dropout on, so the RNG states must come back exactly; the decay window is fixed (24 samples)."""
    from conversion.checkpoint_format import load_checkpoint_file

    base = tiny_hf(tmp_path, family, dropout=0.1)
    whole = train(_cfg(tmp_path, base, tmp_path / "whole", lr_decay_samples=24), say=lambda _m: None)
    first = train(_cfg(tmp_path, base, tmp_path / "parts", train_iters=3, lr_decay_samples=24), say=lambda _m: None)
    messages = []
    rest = train(_cfg(tmp_path, base, tmp_path / "parts", lr_decay_samples=24), say=messages.append)
    assert any("data position iteration 3 / 12 samples" in m for m in messages)
    assert first.train_losses + rest.train_losses == whole.train_losses
    a, b = tmp_path / "whole" / "iter_0000006", tmp_path / "parts" / "iter_0000006"
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    sa, sb = load_checkpoint_file(a / "train_state.pt"), load_checkpoint_file(b / "train_state.pt")
    assert sa["consumed_train_samples"] == sb["consumed_train_samples"] == 24
    assert sa["opt_param_scheduler"] == sb["opt_param_scheduler"]
    for name, moments in sa["optimizer"]["state"].items():  # AdamW's state, keyed by parameter name
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(moments[key], sb["optimizer"]["state"][name][key]), (name, key)
    assert "model.layers.0.self_attn.q_proj.weight" in sa["optimizer"]["state"]
    records = [json.loads(x) for x in (tmp_path / "parts" / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records if r["kind"] == "train"] == [1, 2, 3, 4, 5, 6]


def test_activation_checkpointing_trains_the_same_weights(tmp_path, monkeypatch):
    from transformers.models.llama import modeling_llama

    calls = []
    mlp_forward = modeling_llama.LlamaMLP.forward  # inside each layer: run again when the layer is recomputed

    def counted(self, *args, **kwargs):
        calls[-1] += 1
        return mlp_forward(self, *args, **kwargs)

    monkeypatch.setattr(modeling_llama.LlamaMLP, "forward", counted)
    base = tiny_hf(tmp_path, "llama", dropout=0.1)
    for flag in ("false", "true"):
        calls.append(0)
        train(_cfg(tmp_path, base, tmp_path / f"ckpt_{flag}", train_iters=2, save_interval=2,
                   activation_checkpointing=flag, valid_split_file='""'), say=lambda _m: None)
    assert calls[1] == 2 * calls[0] > 0  # every layer ran its forward again in the backward pass
    plain, recomputed = (_weights(tmp_path / f"ckpt_{f}" / "iter_0000002") for f in ("false", "true"))
    for name in plain:  # the recomputed forward draws the same dropout masks (RNG state preserved)
        torch.testing.assert_close(recomputed[name], plain[name], rtol=1e-5, atol=1e-7, msg=name)


def test_lora_is_refused_for_other_families(tmp_path):
    base = tiny_hf(tmp_path, "llama", dropout=0.0)
    with pytest.raises(ValueError, match="training.lora trains GPT-BigCode models only"):
        train(_cfg(tmp_path, base, tmp_path / "lora", **{"lora.enabled": "true"}), say=lambda _m: None)
