"""Shared set-up for the local-engine tests: a tiny release checkpoint and split files over the fork fixtures.

``tiny_release(tmp, dropout)`` writes a 2-layer, hidden-64 GPT-BigCode (vocab of the fixture tokenizer)
as a Megatron release checkpoint; ``tiny_hf(tmp, family, dropout)`` the same shape of another family (Llama,
Mistral, Qwen2, StarCoder2) as a Hugging Face folder; ``run_overrides(tmp, base, save, **extra)`` gives the
``training.key=value`` list of a short run on the fork's ``sample`` data (seq 256 as in the fixtures);
``released_pretraining(release, out, consumed)``: the same weights as a pretraining run's ``iter_*`` that recorded
``consumed`` samples, made a release by ``conversion.prepare_release`` (which keeps the recorded count).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from tests.conftest import FORK_FIXTURES, REPO_ROOT

TOKENIZER = FORK_FIXTURES / "tokenizer.json"


def tiny_release(tmp: Path, dropout: float = 0.1, name: str = "base") -> Path:
    from training.local.model_init import TinyModelSpec, write_tiny_release

    out = tmp / name
    write_tiny_release(TOKENIZER, out, TinyModelSpec(layers=2, hidden=64, heads=4, max_positions=256,
                                                     dropout=dropout, seed=7))
    return out


def released_pretraining(release: Path, out: Path, consumed: int, iteration: int = 50) -> Path:
    """``out``: a release built by ``conversion.prepare_release`` from a pretraining checkpoint (``out.pretrain``)
    at ``iteration`` that recorded ``consumed`` train samples (and a tenth as many valid ones); ``release``'s
    weights."""
    from conversion.megatron_checkpoint import read_megatron_checkpoint, write_megatron_checkpoint
    from conversion.prepare_release import prepare_release

    start, pretrain = read_megatron_checkpoint(release), out.with_suffix(".pretrain")
    recorded = {"consumed_train_samples": consumed, "consumed_valid_samples": consumed // 10}
    if getattr(start.args, "tokenizer_file", None):
        recorded["tokenizer_file"] = start.args.tokenizer_file
    write_megatron_checkpoint(pretrain, iteration, start.hf_state_dict, start.hf_config, extra_args=recorded)
    return prepare_release(pretrain, out)


def tiny_hf(tmp: Path, family: str, dropout: float = 0.1, name: str = "") -> Path:
    from training.local.model_init import TinyModelSpec, write_tiny_hf_model

    out = tmp / (name or f"base_{family}")
    write_tiny_hf_model(TOKENIZER, out, family, TinyModelSpec(layers=2, hidden=64, heads=4, max_positions=256,
                                                              dropout=dropout, seed=7))
    return out


def split_files(tmp: Path) -> tuple[Path, Path]:
    train, valid = tmp / "train_data_paths.txt", tmp / "valid_data_paths.txt"
    train.write_text(f'"train: 1.0 0:0.95 {FORK_FIXTURES / "sample"}"\n')
    valid.write_text(f'"valid: 1.0 0.95:1 {FORK_FIXTURES / "sample"}"\n')
    return train, valid


def run_overrides(tmp: Path, base: Path, save: Path, **extra) -> list[str]:
    train, valid = split_files(tmp)
    values = {
        "load": base, "save": save, "train_split_file": train, "valid_split_file": valid,
        "tokenizer": TOKENIZER, "seq_length": 256, "micro_batch_size": 2, "global_batch_size": 4,
        "train_iters": 6, "lr": 1e-3, "min_lr": 1e-4, "lr_warmup_samples": 4, "save_interval": 3,
        "eval_interval": 3, "eval_iters": 1, "cpu_threads": 1, "progress_bar": False,
    }
    values.update(extra)
    return [f"training.{k}={v}" for k, v in values.items()]


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(REPO_ROOT))
    return env


PYTHON = sys.executable
