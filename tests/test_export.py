"""``python -m training.export``: a run's checkpoint as a Hugging Face folder, for every layout.

A Llama run (safetensors, one process) and a Llama run under FSDP2 (torch's distributed checkpoint) export to
folders that ``AutoModelForCausalLM`` / ``AutoTokenizer`` load with the logits of the engine's weights; a
GPT-BigCode run exports to what ``conversion.megatron_to_hf`` writes.
"""
import json
import subprocess

import pytest
import torch

from runconfig import load_section
from runconfig.training_section import TrainingConfig
from tests.local_engine_fixtures import PYTHON, run_overrides, subprocess_env, tiny_hf, tiny_release
from training.local.engine import train
from training.local.export import main as export_main
from training.local.hf_family.checkpoint import full_weights, read_train_state

EXTRA = {"train_iters": 2, "save_interval": 1, "eval_interval": 2, "tensorboard": False, "lr_warmup_samples": 0}
TOKENS = torch.tensor([[17, 230, 5, 999, 64, 3000, 12, 7]])


def _cfg(tmp, base, save):
    return load_section(None, "training", TrainingConfig, run_overrides(tmp, base, save, **EXTRA))


@pytest.fixture(scope="module")
def llama_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    base = tiny_hf(tmp, "llama", dropout=0.0)
    train(_cfg(tmp, base, tmp / "run"), say=lambda _m: None)
    return tmp, base


def _engine_logits(folder):
    from transformers import AutoConfig, AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(str(folder)), dtype=torch.float32)
    model.load_state_dict(full_weights(folder, read_train_state(folder)))
    return model.eval()(input_ids=TOKENS).logits


def _exported_logits(out):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32).eval()(input_ids=TOKENS).logits


def test_export_latest_and_named_iterations(llama_run, capsys):
    from transformers import AutoTokenizer

    tmp, _ = llama_run
    out = tmp / "hf"
    assert export_main(["--save", str(tmp / "run"), "--out", str(out)]) == 0
    with torch.no_grad():
        torch.testing.assert_close(_exported_logits(out), _engine_logits(tmp / "run" / "iter_0000002"), rtol=0, atol=0)
    manifest = json.loads((out / "conversion_manifest.json").read_text())
    assert (manifest["iteration"], manifest["layout"], manifest["model_type"]) == (2, "safetensors", "llama")
    assert json.loads((out / "generation_config.json").read_text())["eos_token_id"] == 0  # <|endoftext|>
    tokenizer = AutoTokenizer.from_pretrained(str(out))  # the run's training.tokenizer came along
    assert tokenizer.convert_tokens_to_ids("<|endoftext|>") == 0
    assert export_main(["--save", str(tmp / "run"), "--out", str(out), "--iteration", "1"]) == 0  # replaces it
    with torch.no_grad():
        first = _exported_logits(out)
        torch.testing.assert_close(first, _engine_logits(tmp / "run" / "iter_0000001"), rtol=0, atol=0)
        assert (first - _engine_logits(tmp / "run" / "iter_0000002")).abs().max() > 1e-4


def test_export_refuses_a_folder_it_would_destroy(llama_run, capsys):
    tmp, _ = llama_run
    notes = tmp / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("keep me")
    assert export_main(["--save", str(tmp / "run"), "--out", str(notes)]) == 2
    assert (notes / "todo.txt").read_text() == "keep me"
    assert export_main(["--save", str(tmp / "run"), "--out", str(tmp / "run" / "x"), "--iteration", "9"]) == 2
    assert "iter_0000009: no such checkpoint" in capsys.readouterr().err


def test_export_of_a_sharded_fsdp2_checkpoint(llama_run):
    tmp, base = llama_run
    save = tmp / "fsdp"
    done = subprocess.run(
        [PYTHON, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc_per_node", "2",
         "-m", "training.finetune", *run_overrides(tmp, base, save, fsdp="true", **EXTRA)],
        env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert read_train_state(save / "iter_0000002")["layout"] == "distributed"
    out = tmp / "hf_fsdp"
    assert export_main(["--save", str(save), "--out", str(out), "--dtype", "bfloat16"]) == 0
    from transformers import AutoConfig

    assert AutoConfig.from_pretrained(str(out)).dtype == torch.bfloat16
    with torch.no_grad():  # the bfloat16 copy of the gathered shards
        torch.testing.assert_close(_exported_logits(out), _engine_logits(save / "iter_0000002"), rtol=0.05, atol=0.05)


def test_gpt_bigcode_export_is_megatron_to_hf(tmp_path):
    from conversion.megatron_to_hf import main as megatron_to_hf

    base = tiny_release(tmp_path, dropout=0.0)
    train(_cfg(tmp_path, base, tmp_path / "run"), say=lambda _m: None)
    assert export_main(["--save", str(tmp_path / "run"), "--out", str(tmp_path / "a"), "--iteration", "1"]) == 0
    assert megatron_to_hf(["--megatron", str(tmp_path / "run"), "--out", str(tmp_path / "b"), "--tag", "1",
                           "--no-progress"]) == 0
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "b").iterdir())
    for name in files:
        if name != "conversion_manifest.json":  # it records the seconds taken
            assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def _tokenizer_with(tmp, name, extra_tokens=0, rename=None):
    """The fixture tokenizer with ``extra_tokens`` added tokens, or one token renamed (same size, other ids)."""
    from tokenizers import Tokenizer

    from tests.local_engine_fixtures import TOKENIZER

    data = json.loads(TOKENIZER.read_text())
    if rename:
        vocab = data["model"]["vocab"]
        vocab[rename[1]] = vocab.pop(rename[0])
    path = tmp / name
    path.write_text(json.dumps(data))
    if extra_tokens:
        tokenizer = Tokenizer.from_file(str(path))
        tokenizer.add_tokens([f"<extra_{i}>" for i in range(extra_tokens)])
        tokenizer.save(str(path))
    return path


def test_export_refuses_a_tokenizer_the_run_did_not_train_with(llama_run, capsys):
    from training.local.export import _check_tokenizer

    tmp, _ = llama_run
    other = _tokenizer_with(tmp, "other.json", rename=("def", "zzz_not_def"))
    out = tmp / "hf_other"
    assert export_main(["--save", str(tmp / "run"), "--out", str(out), "--tokenizer", str(other)]) == 2
    err = capsys.readouterr().err
    assert str(other) in err and "was trained with the tokenizer" in err, err
    assert not out.exists()
    bigger = _tokenizer_with(tmp, "bigger.json", extra_tokens=3)  # 8195 tokens for 8192 rows
    with pytest.raises(ValueError, match="has 8195 tokens, but the model of .* has 8192 rows"):
        _check_tokenizer(tmp / "run", {}, str(bigger), bigger, 8192)  # a run that records no tokenizer
    _check_tokenizer(tmp / "run", {}, str(bigger), bigger, 8320)  # a vocabulary padded beyond it is a model's own
