"""The tokenizer is checked against the sha256 every preprocess manifest records, wherever data or a model meets
one (issue 16 item 10): gpt_samples, pretraining, fine-tuning, evaluation loss, preflight and megatron_to_hf
(against the model's rows and its recorded tokenizer). A mismatch is an error naming both files; data without a
manifest gets a warning that says so. Data whose ids exceed the model's vocabulary, and a pad id beyond it, are
refused up front in every mode (item 18).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import GPTBigCodeConfig, GPTBigCodeForCausalLM

from conversion import hf_to_megatron, megatron_to_hf
from dataset.preprocess import main as preprocess_main
from dataset.tokenizer_match import data_manifest
from evaluation.commands import main as evaluation_main
from runconfig import load_section
from runconfig.training_section import TrainingConfig
from tests.local_engine_fixtures import TOKENIZER, run_overrides, tiny_release
from training.engine import train
from training.gpt_samples import main as samples_main
from training.model_init import TinyModelSpec, write_tiny_release
from training.preflight import check_splits

FIM_DIR = Path(__file__).parent / "fixtures" / "fork_fim"
FORK_DIR = Path(__file__).parent / "fixtures" / "fork"


def _same_vocab_other_file(source: Path, out: Path) -> Path:
    """The same tokenizer written with other whitespace: the same ids, another sha256 (another file)."""
    out.write_text(json.dumps(json.loads(source.read_text()), indent=1))
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Raw code (FIM tokenizer) and pairs with a held-out split (fork tokenizer), both with their manifests."""
    root = tmp_path_factory.mktemp("data")
    assert preprocess_main(["--input", str(FIM_DIR / "code.jsonl"), "--tokenizer", str(FIM_DIR / "tokenizer.json"),
                            "--output-prefix", str(root / "code"), "--keys", "content", "--append-eod",
                            "--workers", "1"]) == 0
    assert preprocess_main(["--input", str(FORK_DIR / "sample.jsonl"), "--tokenizer", str(TOKENIZER),
                            "--output-prefix", str(root / "pairs"), "--valid-fraction", "0.2", "--workers", "1"]) == 0
    other = root / "other"
    other.mkdir()
    return {"root": root, "code": root / "code_content_document", "pairs": root / "pairs",
            "other_fim": _same_vocab_other_file(FIM_DIR / "tokenizer.json", other / "fim_tokenizer.json"),
            "other": _same_vocab_other_file(TOKENIZER, other / "tokenizer.json")}


def test_the_manifest_of_a_run_or_document_prefix_is_found(data):
    root = data["root"]
    assert data_manifest(data["code"]) == root / "code.preprocess.manifest.json"
    assert data_manifest(f"{data['pairs']}_valid") == root / "pairs.preprocess.manifest.json"
    assert data_manifest(f"{data['pairs']}_valid_targets_document") == root / "pairs.preprocess.manifest.json"
    assert data_manifest(FIM_DIR / "code_content_document") is None  # the fork's own files: no manifest


def _samples_argv(prefix: Path, tokenizer: Path, tmp_path: Path) -> list[str]:
    return ["--data-prefix", str(prefix), "--tokenizer", str(tokenizer), "--seq-length", "64", "--num-samples",
            "4", "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "s.npy")]


def test_gpt_samples_refuses_another_tokenizer_and_warns_without_a_manifest(data, tmp_path, capsys):
    assert samples_main(_samples_argv(data["code"], data["other_fim"], tmp_path)) == 2
    err = capsys.readouterr().err
    assert f"tokenized with {FIM_DIR / 'tokenizer.json'}" in err and str(data["other_fim"]) in err, err
    assert not (tmp_path / "s.npy").exists() and not (tmp_path / "cache").exists()
    assert samples_main(_samples_argv(data["code"], FIM_DIR / "tokenizer.json", tmp_path)) == 0
    assert "warning" not in capsys.readouterr().err
    assert samples_main(_samples_argv(FIM_DIR / "code_content_document", data["other_fim"], tmp_path)) == 0
    assert "has no preprocess manifest" in capsys.readouterr().err  # nothing to check against: said, not silent


def _pretrain(tmp_path: Path, data_path: Path, tokenizer: Path, load: Path, **extra) -> TrainingConfig:
    values = {"mode": "pretrain", "load": load, "save": tmp_path / "run", "tokenizer": tokenizer,
              "pretrain.data_path": data_path, "pretrain.fim_rate": 0.0, "seq_length": 64, "micro_batch_size": 1,
              "global_batch_size": 1, "train_iters": 1, "lr_warmup_samples": 0, "eval_interval": 1,
              "eval_iters": 1, "progress_bar": False, "tensorboard": False, "cpu_threads": 1, **extra}
    return load_section(None, "training", TrainingConfig, [f"training.{k}={v}" for k, v in values.items()])


def test_pretraining_refuses_another_tokenizer_before_writing(data, tmp_path):
    base = tiny_release(tmp_path)  # the fork tokenizer's 8192 tokens: FIM's tokenizer has as many
    with pytest.raises(ValueError, match="but the tokenizer here is .*fim_tokenizer.json"):
        train(_pretrain(tmp_path, data["code"], data["other_fim"], base))
    assert not (tmp_path / "run").exists()


def test_pretraining_data_beyond_the_models_vocabulary_is_refused_up_front(tmp_path):
    from tokenizers import Tokenizer, models

    tiny = tmp_path / "tiny_tokenizer.json"
    Tokenizer(models.WordLevel({"<|endoftext|>": 0, "a": 1}, unk_token="a")).save(str(tiny))
    small = tmp_path / "small"  # a 2-token model (model_init records the tokenizer's size); ids up to the thousands
    write_tiny_release(tiny, small, TinyModelSpec(layers=1, hidden=16, heads=2, max_positions=64))
    with pytest.raises(ValueError, match=r"code_content_document \(in training.pretrain.data_path\) .*\(the largest"
                                         r" token id in .*code_content_document.bin\).* has 2 token embeddings"):
        train(_pretrain(tmp_path, FIM_DIR / "code_content_document", tiny, small, pad_id=1))  # was an IndexError
    assert not (tmp_path / "run").exists()


def test_finetuning_refuses_another_tokenizer_and_a_pad_id_beyond_the_model(data, tmp_path):
    base = tiny_release(tmp_path)
    train_file, valid_file = tmp_path / "t.txt", tmp_path / "v.txt"
    train_file.write_text(f'"train: 1.0 0:1 {data["pairs"]}"\n')
    valid_file.write_text(f'"valid: 1.0 0:1 {data["pairs"]}_valid"\n')
    overrides = run_overrides(tmp_path, base, tmp_path / "run", train_split_file=train_file,
                              valid_split_file=valid_file, tokenizer=data["other"])
    with pytest.raises(ValueError, match=rf"{data['pairs']} was tokenized with {TOKENIZER}.*{data['other']}"):
        train(load_section(None, "training", TrainingConfig, overrides))
    assert not (tmp_path / "run").exists()
    overrides = run_overrides(tmp_path, base, tmp_path / "run", pad_id=100000)
    with pytest.raises(ValueError, match="training.pad_id is 100000, but the model in training.load has 8192 token"):
        train(load_section(None, "training", TrainingConfig, overrides))  # was an IndexError after the index maps
    assert not (tmp_path / "run").exists()


def test_preflight_finds_data_of_another_tokenizer(data, tmp_path):
    train_file = tmp_path / "t.txt"
    train_file.write_text(f'"train: 1.0 0:1 {data["pairs"]}"\n')
    cfg = load_section(None, "training", TrainingConfig, [f"training.train_split_file={train_file}",
                                                          f"training.tokenizer={data['other']}"])
    errors = [f.message for f in check_splits(cfg, 8192, fork=True) if f.error]
    assert any(f"{data['pairs']} was tokenized with {TOKENIZER}" in e for e in errors), errors
    cfg = load_section(None, "training", TrainingConfig, [f"training.train_split_file={train_file}",
                                                          f"training.tokenizer={TOKENIZER}"])
    assert not [f for f in check_splits(cfg, 8192, fork=True) if "tokenized with" in f.message]


def test_evaluation_loss_refuses_a_model_of_another_tokenizer_or_a_smaller_vocabulary(data, tmp_path, capsys):
    from tokenizers import Tokenizer, models

    tuned = tmp_path / "tuned_hf"
    write_tiny_release(data["other"], tmp_path / "release", TinyModelSpec(layers=1, hidden=16, heads=2,
                                                                           max_positions=64), tuned)
    out = tmp_path / "loss.json"
    capsys.readouterr()
    argv = ["loss", "--base", str(tuned), "--tuned", str(tuned), "--valid-prefix", f"{data['pairs']}_valid",
            "--device", "cpu", "--out", str(out)]
    assert evaluation_main(argv) == 2
    err = capsys.readouterr().err
    assert f"tokenized with {TOKENIZER}" in err and str(tuned) in err and len(err.strip().splitlines()) == 1, err
    tiny = tmp_path / "tiny_tokenizer.json"
    Tokenizer(models.WordLevel({"<|endoftext|>": 0, "a": 1}, unk_token="a")).save(str(tiny))
    small = tmp_path / "small_hf"  # 128 embeddings, data without a manifest whose ids go far beyond
    write_tiny_release(tiny, tmp_path / "small", TinyModelSpec(layers=1, hidden=16, heads=2, max_positions=512), small)
    argv[2:5] = [str(small), "--tuned", str(small)]
    capsys.readouterr()
    argv[argv.index("--valid-prefix") + 1] = str(FORK_DIR / "sample")
    assert evaluation_main(argv) == 2  # was an IndexError inside the embedding
    err = capsys.readouterr().err
    assert "has 128 token embeddings" in err and "largest token id" in err, err
    assert not out.exists()


@pytest.fixture(scope="module")
def model_of_515(tmp_path_factory):
    """A 515-token model as a Megatron checkpoint (515 true rows, padded to 640)."""
    root = tmp_path_factory.mktemp("m515")
    config = GPTBigCodeConfig(vocab_size=515, n_positions=32, n_embd=16, n_layer=1, n_head=2, multi_query=True)
    GPTBigCodeForCausalLM(config).save_pretrained(root / "hf")
    hf_to_megatron.convert(root / "hf", root / "megatron", tp=1, pp=1)
    return root / "megatron"


def test_megatron_to_hf_refuses_a_tokenizer_the_model_was_not_made_with(model_of_515, tmp_path, capsys):
    out = tmp_path / "hf"
    argv = ["--megatron", str(model_of_515), "--out", str(out), "--no-progress"]
    assert megatron_to_hf.main([*argv, "--tokenizer", str(TOKENIZER)]) == 2  # 8192 tokens, 515 rows
    err = capsys.readouterr().err
    assert str(TOKENIZER) in err and "8192 tokens, but the checkpoint's vocabulary has 515" in err, err
    assert not out.exists()


def test_megatron_to_hf_refuses_another_file_than_the_recorded_tokenizer(data, tmp_path, capsys):
    release = tmp_path / "release"  # model_init records its tokenizer in the checkpoint's args
    write_tiny_release(TOKENIZER, release, TinyModelSpec(layers=1, hidden=16, heads=2, max_positions=64))
    out = tmp_path / "hf"
    argv = ["--megatron", str(release), "--out", str(out), "--no-progress"]
    assert megatron_to_hf.main([*argv, "--tokenizer", str(data["other"])]) == 2  # same size, another file
    err = capsys.readouterr().err
    assert f"was trained with the tokenizer {TOKENIZER.resolve()}" in err and str(data["other"]) in err, err
    assert not out.exists()
    assert megatron_to_hf.main([*argv, "--tokenizer", str(TOKENIZER)]) == 0 and (out / "tokenizer.json").is_file()
