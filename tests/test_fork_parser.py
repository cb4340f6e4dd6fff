"""The fork's own parser is the judge: every shipped preset's argv through its ``parse_args`` + ``validate_args``.

Needs checkouts of the fork; skipped without them:

    MEGATRON_DIR=/path/to/Megatron-LM@mtf [MEGATRON_MQA_DIR=/path/to/Megatron-LM@multi-query-attention] \\
        python -m pytest -q tests/test_fork_parser.py

``tests/fork_parser_harness.py`` runs the fork's two calls in a subprocess, as rank 0 of the config's
``nodes x gpus_per_node`` job would (``finetune_mtf.py`` on ``mtf``, ``pretrain_gpt.py`` on
``multi-query-attention``). Split files are written by ``dataset.splits write`` (the fork opens them while parsing).
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dataset.splitting.splits import main as splits_main
from runconfig.model_presets import PRESETS, preset
from runconfig.run_config import load_run_config
from tests.conftest import REPO_ROOT
from training.cluster.fork_job import plan_job
from training.cluster.megatron_argv import StartPoint, build_megatron_argv

HARNESS = Path(__file__).parent / "fork_parser_harness.py"
CONFIGS = REPO_ROOT / "scripts" / "configs"
OPTIONS = [[], ["training.sequence_parallel=true", "training.use_distributed_optimizer=true",
                "training.recompute_activations=true", "training.dtype=float16", "training.norm_target_loss=true",
                "training.use_flash_attn=true"], ["training.dtype=bfloat16", "training.use_flash_attn=false"]]
PRETRAIN = ["training.mode=pretrain", "training.pretrain.data_path=/scratch/x_content_document",
            "training.pretrain.fim_split_sample=<file_sep>", "training.pretrain.reset_position_ids=true",
            "training.pretrain.reset_attention_mask=true", "training.pretrain.eod_mask_loss=true",
            "training.use_flash_attn=false"]


def _fork(variable: str) -> Path:
    folder = os.environ.get(variable, "")
    if not folder or not (Path(folder) / "megatron" / "arguments.py").is_file():
        pytest.skip(f"{variable} does not point at a checkout of the BigCode Megatron-LM fork")
    return Path(folder)


def _verdicts(fork: Path, jobs: list[dict]) -> list[str]:
    done = subprocess.run([sys.executable, str(HARNESS), str(fork)], input=json.dumps(jobs), capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)))
    verdicts = done.stdout.splitlines()
    assert len(verdicts) == len(jobs), done.stderr[-2000:]
    return verdicts


def _jobs(tmp_path: Path, overrides: list[str]) -> list[dict]:
    """Each preset config's job at its start, and resumed (with and without --no-load-optim)."""
    jobs = []
    for name in sorted(PRESETS):
        config = CONFIGS / f"{name}.yaml"
        out = tmp_path / name
        assert splits_main(["write", "--config", str(config), f"splits.out_dir={out}"]) == 0
        common = [f"training.train_split_file={out}/train_data_paths.txt",
                  f"training.valid_split_file={out}/valid_data_paths.txt", f"training.save={out}/save"]
        for options in OPTIONS:
            run = load_run_config(config, [*common, *options, *overrides])  # overrides win
            start = plan_job(run, str(config), []).to_json()
            assert "--finetune" in start["argv"]  # the save folder is empty: a start
            jobs.append(start)
            for load_flags in ((), ("--no-load-optim",)):
                resume = build_megatron_argv(run.training, preset(name), StartPoint(True, run.training.save), 128,
                                             load_flags)
                jobs.append(dict(start, argv=resume))
    return jobs


def test_every_preset_argv_is_accepted_by_the_fine_tuning_branch(tmp_path):
    fork = _fork("MEGATRON_DIR")
    jobs = _jobs(tmp_path, [])
    # the judge can say no: an underscore flag (argparse) and a mixed iteration/sample schedule (validate_args)
    bad = [dict(jobs[0], argv=[*jobs[0]["argv"], "--train_iters", "5"]),
           dict(jobs[0], argv=[*jobs[0]["argv"], "--lr-warmup-iters", "5"])]
    verdicts = _verdicts(fork, jobs + bad)
    assert verdicts[:-2] == ["accepted"] * len(jobs), [(j["argv"], v) for j, v in zip(jobs, verdicts) if v != "accepted"]
    assert verdicts[-2].startswith("rejected: argparse") and "sample-based" in verdicts[-1]


def test_every_preset_pretrain_argv_is_accepted_by_the_pretraining_branch(tmp_path):
    fork = _fork("MEGATRON_MQA_DIR")
    jobs = _jobs(tmp_path, PRETRAIN)
    assert {job["script"] for job in jobs} == {"pretrain_gpt.py"}
    verdicts = _verdicts(fork, jobs)
    assert verdicts == ["accepted"] * len(jobs), [(j["argv"], v) for j, v in zip(jobs, verdicts) if v != "accepted"]
