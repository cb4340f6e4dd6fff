"""The local engine end to end in-process: layout, schedule, validation, metrics, PNG, resume, refusals."""
import json

import numpy as np
import pytest

from runconfig import build_dataclass, load_section
from runconfig.training_section import TrainingConfig
from tests.conftest import FORK_FIXTURES
from tests.local_engine_fixtures import run_overrides, tiny_release
from training.local.checkpointing import ResumeError
from training.local.engine import train
from training.local.finetune import main


def _cfg(tmp_path, base, save, **extra):
    return load_section(None, "training", TrainingConfig, run_overrides(tmp_path, base, save, **extra))


def _saved_config(save):
    """``training_config.json`` read back into a TrainingConfig by the config loader (lists become tuples)."""
    data = json.loads((save / "training_config.json").read_text(encoding="utf-8"))
    return build_dataclass(TrainingConfig, data, "training_config.json")


def test_fresh_run_then_resume(tmp_path):
    base = tiny_release(tmp_path, dropout=0.1)
    save = tmp_path / "run"
    messages = []
    first = _cfg(tmp_path, base, save, eval_interval=2)
    result = train(first, say=messages.append)
    assert _saved_config(save) == first and _saved_config(save).save == str(save)
    assert any(m.startswith("reset: optimizer state") for m in messages)
    # the valid range 0.95:1 is really held out (documents 380..399), and the run says so
    valid_block = next(m for m in messages if m.startswith("data: group 'valid'"))
    # eval_iters 1 x global batch 4 read at every evaluation; the fork would walk through (6 // 2 + 1) x 1 x 4
    assert any(m.startswith("data: validation scores the same first 4 samples (eval_iters x global_batch_size) of"
                            " each valid group at every evaluation; the fork walks on through 16 (") for m in messages)
    assert "documents [380, 400] of 400;" in valid_block and "reads documents" not in valid_block
    # the fixture README: document 374 (617 tokens) does not fit a row of 257 and the fork skips it
    assert "data: 1 pairs longer than 257 tokens were skipped (as the fork does)" in messages
    assert (save / "latest_checkpointed_iteration.txt").read_text() == "6"
    for it in (3, 6):
        assert (save / f"iter_{it:07d}" / "mp_rank_00" / "model_optim_rng.pt").is_file()
        assert f"iteration {it}: saved checkpoint {save}/iter_000000{it}" in messages
    assert result.last_checkpoint == save / "iter_0000006"
    assert not list(save.rglob("*.tmp-*"))  # nothing half-written left behind
    assert (base / "latest_checkpointed_iteration.txt").read_text().strip() == "release"

    records = [json.loads(line) for line in (save / "metrics.jsonl").read_text().splitlines()]
    train_lr = [r["lr"] for r in records if r["kind"] == "train"]
    # warmup 4 samples, batch 4: the fork's first update uses lr 0, the second the full 1e-3
    assert train_lr[0] == 0.0 and train_lr[1] == pytest.approx(1e-3)
    assert min(train_lr[2:]) >= 1e-4 and train_lr[2] > train_lr[-1]
    valid = [r["loss"] for r in records if r["kind"] == "valid"]
    assert len(valid) == 4 and valid[-1] < valid[0]  # iteration 0 (before training), 2, 4, 6
    assert result.valid_losses[-1][1] == valid[-1]
    assert all(r["tokens_per_s"] > 0 for r in records if r["kind"] == "train")
    times = [r["time"] for r in records]  # wall clock per record (bench_train times the engine with it)
    assert times == sorted(times) and times[-1] - times[0] > 0
    assert (save / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list((save / "tensorboard").glob("events.out.tfevents.*"))

    # a resume the checkpoint refuses (another batch size) leaves the record of the run that exists
    with pytest.raises(ResumeError, match="global_batch_size 2"):
        train(_cfg(tmp_path, base, save, global_batch_size=2, micro_batch_size=1), say=lambda _m: None)
    assert _saved_config(save) == first

    messages.clear()
    second = _cfg(tmp_path, base, save, train_iters=8, eval_interval=2, lr_decay_samples=24)
    more = train(second, say=messages.append)
    assert _saved_config(save) == second and (second.train_iters, second.lr_decay_samples) == (8, 24)  # the resume's
    assert more.iteration == 8 and [i for i, _ in more.train_losses] == [7, 8]
    assert more.last_checkpoint == save / "iter_0000008"
    assert f"restored: model weights from {save}/iter_0000006" in messages
    assert any("data position iteration 6 / 24 samples" in m for m in messages)


def test_refuses_to_write_over_the_starting_checkpoint(tmp_path):
    base = tiny_release(tmp_path, dropout=0.0)
    with pytest.raises(ResumeError, match="same folder"):
        train(_cfg(tmp_path, base, base), say=lambda _m: None)
    with pytest.raises(ResumeError, match="says 'release'"):
        train(_cfg(tmp_path, tmp_path / "elsewhere", base), say=lambda _m: None)


def test_cli_reports_config_errors(tmp_path, capsys):
    assert main(["training.no_such_key=1"]) == 2
    assert "no_such_key" in capsys.readouterr().err


def test_starts_from_a_hugging_face_folder_and_reports_mfu(tmp_path):
    from tests.local_engine_fixtures import TOKENIZER
    from training.local.model_init import TinyModelSpec, write_tiny_release

    write_tiny_release(TOKENIZER, tmp_path / "rel", TinyModelSpec(max_positions=256, dropout=0.0), hf_out=tmp_path / "hf")
    save = tmp_path / "from_hf"
    messages = []
    train(_cfg(tmp_path, tmp_path / "hf", save, train_iters=1, lr_warmup_samples=0,
                                     valid_split_file='""', peak_flops=1e12),
          say=messages.append)
    assert any("Hugging Face model" in m for m in messages)
    record = json.loads((save / "metrics.jsonl").read_text().splitlines()[0])
    # 6 x params + 12 x layers x hidden x seq FLOPs per token, over the 1 TFLOP/s peak that was given
    per_layer = (64 * 96 + 96) + (64 * 64 + 64) + 4 * 64 + (64 * 256 + 256) + (256 * 64 + 64)  # MQA: q + 2 x 16
    params = 8192 * 64 + 256 * 64 + 2 * per_layer + 2 * 64  # wte, wpe, layers, ln_f
    expected_tflops = (6 * params + 12 * 2 * 64 * 256) * record["tokens_per_s"] / 1e12
    assert record["tflops_per_device"] == pytest.approx(expected_tflops, rel=1e-6)
    assert record["mfu"] == pytest.approx(expected_tflops, rel=1e-6)


def test_legacy_split_offsets_reads_the_first_documents_and_warns(tmp_path):
    base = tiny_release(tmp_path, dropout=0.0)
    messages = []
    train(_cfg(tmp_path, base, tmp_path / "legacy", train_iters=1, lr_warmup_samples=0, legacy_split_offsets="true",
               tensorboard="false"),
          say=messages.append)
    valid_block = next(m for m in messages if m.startswith("data: group 'valid'"))
    # eval_iters 1 x global batch 4 read at every evaluation; the fork would walk through (1 // 3 + 1) x 1 x 4
    assert any(m.startswith("data: validation scores the same first 4 samples (eval_iters x global_batch_size) of"
                            " each valid group at every evaluation; the fork walks on through 4 (") for m in messages)
    assert "documents [380, 400] of 400, reads documents [0, 20];" in valid_block  # the fork's bug, on request
    assert any(m.startswith("warning: legacy_split_offsets=true") for m in messages)


def test_loss_on_targets_only_false_trains_on_inputs_too(tmp_path):
    base = tiny_release(tmp_path, dropout=0.0)
    counted = {}
    for flag in ("true", "false"):
        save = tmp_path / f"targets_only_{flag}"
        train(_cfg(tmp_path, base, save, train_iters=1, lr_warmup_samples=0, valid_split_file='""',
                   loss_on_targets_only=flag, tensorboard="false"), say=lambda _m: None)
        counted[flag] = json.loads((save / "metrics.jsonl").read_text().splitlines()[0])["target_tokens_rank0"]
    assert counted["false"] > counted["true"] > 0  # the inputs count too (765 vs 409 labels in the first batch)
    # the first global batch is the fork's first two micro-batches of rows (same range 0:0.95, seed, packing)
    fork = np.load(FORK_FIXTURES / "batch_train.npz")
    assert counted["true"] == fork["loss_mask"][:2].sum()
    assert counted["false"] == (fork["labels"][:2] != 4).sum()  # 4: the fixture tokenizer's <fim_pad>


def test_warmup_not_below_decay_stops_the_cli_before_the_model_or_the_data(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    save = tmp_path / "save"
    config.write_text(f"training:\n  load: {tmp_path / 'no_model_here'}\n  save: {save}\n  train_iters: 5\n"
                      "  global_batch_size: 8\n  lr_warmup_samples: 40\n")
    assert main(["--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"{config}:1: training: lr_decay_samples (40 = train_iters x global_batch_size) must exceed" in err
    assert "no_model_here" not in err and not save.exists()  # found before the model is looked for or a file is written


def _small_vocab_hf_model(folder):
    from transformers import GPTBigCodeConfig, GPTBigCodeForCausalLM

    config = GPTBigCodeConfig(vocab_size=4096, n_positions=256, n_embd=32, n_layer=1, n_head=4, multi_query=True,
                              bos_token_id=0, eos_token_id=0, pad_token_id=4)
    GPTBigCodeForCausalLM(config).save_pretrained(folder)
    return folder


def test_data_with_a_larger_vocabulary_than_the_model_is_refused_before_anything_is_written(tmp_path, fork_dir):
    from dataset.preprocessing.preprocess import main as preprocess_main

    model = _small_vocab_hf_model(tmp_path / "hf4096")
    save = tmp_path / "save"
    # the fork's own files carry no manifest: the largest token id in them (the fixture ids reach 8191) decides
    with pytest.raises(ValueError, match=rf"{FORK_FIXTURES / 'sample'} \(in .*train_data_paths.txt\) was tokenized"
                                         r" with an unknown tokenizer of 8\d\d\d tokens \(the largest token id"
                                         rf".*the model {model} has 4096 token embeddings"):
        train(_cfg(tmp_path, model, save), say=lambda _m: None)
    assert not save.exists()
    # data from dataset.preprocess: its manifest names the tokenizer and its vocabulary
    prefix = tmp_path / "data" / "pairs"
    assert preprocess_main(["--input", str(fork_dir / "sample.jsonl"), "--tokenizer", str(fork_dir / "tokenizer.json"),
                            "--output-prefix", str(prefix), "--valid-count", "20"]) == 0
    (tmp_path / "t.txt").write_text(f'"train: 1.0 0:1 {prefix}"\n')
    (tmp_path / "v.txt").write_text(f'"valid: 1.0 0:1 {prefix}_valid"\n')
    with pytest.raises(ValueError, match=rf"tokenized with tokenizer {fork_dir / 'tokenizer.json'} of 8192 tokens"
                                         rf" \({prefix}.preprocess.manifest.json\), but the model {model} has 4096"):
        train(_cfg(tmp_path, model, save, train_split_file=tmp_path / "t.txt", valid_split_file=tmp_path / "v.txt"),
              say=lambda _m: None)
    assert not save.exists()
