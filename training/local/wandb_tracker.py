"""Weights & Biases tracking for the local engine (``training.wandb``), off unless asked for.

``training.wandb.mode``: ``disabled`` (default: nothing is imported), ``offline`` (the run is written under
``SAVE/wandb/`` for a later ``wandb sync``) or ``online``. Rank 0 opens one W&B run with the resolved
``TrainingConfig`` as its config, named ``training.wandb.run_name`` (default: the save folder's name) in
``training.wandb.project``, and logs every record the engine writes to ``metrics.jsonl`` (loss, lr, grad norm,
tokens/s, TFLOP/s, MFU, validation) under ``train/...`` and ``valid/...`` against the ``iteration`` metric.
The run id is kept in ``SAVE/wandb/run_id``: a resumed run (or a job after a preemption) continues the same
W&B run (``resume="allow"``); the iterations it repeats after the checkpoint are logged again under the same
``iteration`` values. ``wandb`` is an optional dependency (``pip install codeft[wandb]``).

    tracker = open_wandb(cfg.wandb, save_dir, asdict(cfg))    # None when disabled
    tracker.log("train", 10, {"loss": 2.3}); tracker.close()
"""
from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from guardrails.atomic_files import write_text_atomic

FOLDER = "wandb"  # under the save folder: W&B's own run folders and the id file
RUN_ID_FILE = "run_id"


class WandbTracker:
    """One W&B run, logged from rank 0."""

    def __init__(self, run: Any) -> None:
        self.run = run
        run.define_metric("iteration")
        run.define_metric("*", step_metric="iteration")

    def log(self, kind: str, iteration: int, values: dict[str, Any]) -> None:
        numbers = {f"{kind}/{k}": v for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        self.run.log({**numbers, "iteration": int(iteration)})

    def close(self) -> None:
        self.run.finish()


def _run_id(folder: Path) -> str:
    """The run's W&B id: the one kept in the save folder, else a new one (8 lowercase hex characters)."""
    path = folder / RUN_ID_FILE
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    run_id = secrets.token_hex(4)
    write_text_atomic(path, run_id + "\n")
    return run_id


def _wandb_module(settings: Any) -> Any:
    try:
        import wandb
    except ImportError as exc:
        raise ValueError(f"training.wandb.mode={settings.mode} needs the wandb package: pip install wandb"
                         " (or codeft[wandb]); or set training.wandb.mode=disabled") from exc
    return wandb


def check_wandb(settings: Any) -> None:
    """Refuse a tracking mode without the package before the run loads a model or writes a file."""
    if settings.mode != "disabled":
        _wandb_module(settings)


def open_wandb(settings: Any, save_dir: Path, config: dict[str, Any]) -> WandbTracker | None:
    """The run's tracker, or None with ``mode: disabled``."""
    if settings.mode == "disabled":
        return None
    wandb = _wandb_module(settings)
    folder = Path(save_dir) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    run = wandb.init(project=settings.project, name=settings.run_name or Path(save_dir).resolve().name,
                     mode=settings.mode, dir=str(save_dir), id=_run_id(folder),
                     resume="allow", config=config, settings=wandb.Settings(console="off", silent=True))
    return WandbTracker(run)
