"""Issue 16 item 19: messages that named no path, the wrong path, or said what is not so, now say what happened.

(The full disk that named the source instead of the file being written: ``tests/test_command_errors.py``; Ctrl-C
in preprocess over an earlier output: ``tests/test_preprocess_crash.py``; torch's own words for
``adam_beta1=1.5``: the config's value checks, issue 16 item 13.)
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from guardrails.command_errors import run_command
from guardrails.output_paths import forget_claims
from tests.attack_world import TOKENIZER
from tests.conftest import FORK_FIXTURES, REPO_ROOT
from tests.local_engine_fixtures import run_overrides, subprocess_env


def _err(capsys) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


def test_preprocess_and_merge_refusals_are_one_line_naming_what_they_left(tmp_path, capsys):
    from dataset.preprocessing.merge_shards import main as merge
    from dataset.preprocessing.preprocess import main as preprocess

    prefix = tmp_path / "pairs"
    assert run_command(preprocess, ["--input", str(tmp_path / "missing.jsonl"), "--tokenizer", str(TOKENIZER),
                                    "--output-prefix", str(prefix)]) == 2
    assert _err(capsys) == [f"preprocess: error: {tmp_path / 'missing.jsonl'}: no such input file; check --input"
                            f" ({prefix}_* is unchanged)"]
    forget_claims()
    assert run_command(merge, ["--output-prefix", str(prefix), "--num-shards", "2"]) == 2
    lines = _err(capsys)
    assert len(lines) == 1 and lines[0].startswith("merge_shards: error: shard 0 of 2 is missing or unfinished")
    assert lines[0].endswith(f"({prefix}_* is unchanged)")


def test_an_input_named_like_an_override_is_an_input(tmp_path, capsys):
    from dataset.preprocessing.preprocess import main as preprocess

    assert run_command(preprocess, ["--input", "y=1.jsonl", "--tokenizer", str(TOKENIZER), "--output-prefix",
                                    str(tmp_path / "p")]) == 2
    assert "y=1.jsonl: no such input file; check --input" in _err(capsys)[-1]


def test_a_resume_error_names_the_checkpoint_folder_that_exists(attack_world, tmp_path, capsys):
    from training.local.finetune import main

    save = tmp_path / "run"
    assert main(run_overrides(attack_world, attack_world / "base", save, train_iters=1, save_interval=1,
                              eval_interval=1, lr_warmup_samples=0)) == 0
    forget_claims()
    capsys.readouterr()
    assert main(run_overrides(attack_world, attack_world / "base", save, train_iters=2, save_interval=1,
                              eval_interval=1, lr_warmup_samples=0, global_batch_size=8)) == 2
    last = _err(capsys)[-1]
    assert f"{save / 'iter_0000001'}: 4 samples consumed in 1 iterations does not match" in last, last
    assert (save / "iter_0000001").is_dir()


def test_a_tag_that_is_no_iteration_is_named(attack_world, tmp_path, capsys):
    from conversion.megatron_to_hf import main

    assert main(["--megatron", str(attack_world / "base"), "--out", str(tmp_path / "hf"), "--tag", "../../etc",
                 "--no-progress"]) == 2
    assert _err(capsys)[-1] == ("megatron_to_hf: error: checkpoint tag '../../etc': expected 'release' or an"
                                " iteration number (e.g. 250)")


def test_evaluation_says_what_is_wrong_with_timeout_and_model(tmp_path, capsys):
    from evaluation import commands

    assert commands.main(["humaneval", "--canonical", "--out", str(tmp_path / "r.json"), "--timeout", "0"]) == 2
    assert _err(capsys) == ["error: --timeout must be > 0, got 0.0 (seconds per program)"]  # not bubblewrap's
    missing = tmp_path / "no_such_model"
    assert commands.main(["infill", "--model", str(missing), "--out", str(tmp_path / "i.json")]) == 2
    assert _err(capsys) == [f"error: {missing}: is not a folder; give a Hugging Face model folder (what"
                            " conversion.megatron_to_hf writes)"]


def test_convert_large_without_arguments_prints_its_usage():
    run = subprocess.run(["bash", str(REPO_ROOT / "conversion" / "convert_large.sh")], capture_output=True,
                         text=True, env=subprocess_env())
    assert run.returncode == 2
    assert run.stderr == "usage: conversion/convert_large.sh MEGATRON_ROOT HF_OUT [megatron_to_hf options]\n"


def test_a_rule_broken_by_a_command_line_override_says_so(tmp_path):
    import pytest

    from runconfig import ConfigError, load_section
    from runconfig.training_section import TrainingConfig

    config = tmp_path / "run.yaml"
    config.write_text("training:\n  train_iters: 10\n  global_batch_size: 4\n")
    load_section(config, "training", TrainingConfig)  # the file alone is fine
    with pytest.raises(ConfigError) as info:
        load_section(config, "training", TrainingConfig, ["training.lr_warmup_samples=1000"])
    assert str(info.value).startswith(f"the command line (training.lr_warmup_samples=1000) over {config}:1: training: ")
    with pytest.raises(ConfigError) as info:  # a bare key=value is this section's override too, and is named
        load_section(config, "training", TrainingConfig, ["lr_warmup_samples=1000", "data.workers=2"])
    assert str(info.value).startswith(f"the command line (lr_warmup_samples=1000) over {config}:1: training: ")
    config.write_text("training:\n  train_iters: 10\n  global_batch_size: 4\n  lr_warmup_samples: 1000\n")
    with pytest.raises(ConfigError) as info:  # broken by the file alone: its line, whatever the command line says
        load_section(config, "training", TrainingConfig, ["training.lr=0.1"])
    assert str(info.value).startswith(f"{config}:1: training: ")


def test_splits_plan_on_a_missing_prefix_is_a_user_error(tmp_path, capsys):
    from dataset.splitting.splits import main as splits

    split = tmp_path / "train.txt"
    split.write_text(f'"train: 1.0 0:1 {tmp_path / "nothing"}"\n')
    assert splits(["plan", "--train", str(split), "--seq-length", "256"]) == 2
    assert str(tmp_path / "nothing") in _err(capsys)[-1]


def test_sigterm_is_said_and_leaves_the_output_unchanged(tmp_path):
    code = ("import os, signal, sys\n"
            "from guardrails.command_errors import run_command\n"
            "from dataset.splitting import splits\n"
            "real = splits.write_split_file\n"
            "def write(path, groups):\n"
            "    splits.claim_split_file(path)\n"
            "    os.kill(os.getpid(), signal.SIGTERM)\n"
            "    return real(path, groups)\n"
            "splits.write_split_file = write\n"
            "raise SystemExit(run_command(splits.main, sys.argv[1:]))\n")
    out = tmp_path / "train.txt"
    run = subprocess.run([os.sys.executable, "-c", code, "write", "--out", str(out), "--name", "train",
                          "1.0 0:1 pairs"], cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True)
    assert run.returncode == 143, run.stderr
    assert run.stderr == f"splits: terminated (SIGTERM); {out} is unchanged\n"
    assert not out.exists() and list(tmp_path.iterdir()) == []
    assert Path(FORK_FIXTURES).is_dir()
