"""Fine-tune with the local engine: ``python -m training.finetune --engine local --config RUN.yaml [k=v ...]``.

The code of ``python -m training.finetune``; how to run it and what it does: the docstring of its entry point
``training/finetune.py``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from runconfig import ConfigError, load_section
from runconfig.training_section import TrainingConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.finetune", description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=None, help="run config YAML (its training: section is read)")
    parser.add_argument("--engine", choices=["local"], default="local",
                        help="only the local engine runs here; the fork is launched by the SLURM builder")
    parser.add_argument("overrides", nargs="*", help="training.key=value overrides, e.g. training.train_iters=10")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        cfg = load_section(args.config, "training", TrainingConfig, [*args.overrides, "training.engine=local"])
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from training.local.engine import train
    from training.local.lora import QLoraUnavailableError

    try:
        result = train(cfg)
    # bad configuration or data (ResumeError, PackingError, ... are ValueErrors); any other RuntimeError is
    # torch's or a bug and keeps its traceback
    except (ValueError, FileNotFoundError, QLoraUnavailableError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({
            "iteration": result.iteration,
            "consumed_samples": result.consumed_samples,
            "final_train_loss": result.train_losses[-1][1] if result.train_losses else None,
            "valid_losses": result.valid_losses,
            "checkpoint": str(result.last_checkpoint) if result.last_checkpoint else None,
            "tokens_per_s": round(result.tokens_per_s, 1),
        }))
    return 0
