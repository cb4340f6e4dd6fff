"""Training metrics of the local engine: JSON lines, TensorBoard, throughput, TFLOP/s, MFU, loss-curve PNG.

Everything lands in the save folder (and, with ``training.wandb``, in Weights & Biases: ``training.local.wandb_tracker``):
``metrics.jsonl`` (one JSON object per logged iteration or
evaluation, ``{"kind": "train"|"valid", "iteration": ..., "time": unix seconds, ...}``),
``tensorboard/`` and, at the end, ``loss_curve.png``. On resume the lines after the restored
iteration (written by the killed run) are dropped (all of them when a run starts afresh), so the
file always tells the story of the weights that exist.

FLOPs per trained token follow the usual dense-transformer count: 6 x parameters (forward and
backward matmuls) + 12 x layers x hidden x sequence (attention scores and values). MFU = achieved /
peak; the peak comes from ``training.peak_flops`` or from ``PEAK_FLOPS`` by device name.

    logger = MetricsLogger(save_dir, keep_through=-1, tensorboard=True)   # -1: a fresh run
    logger.log("train", 10, {"loss": 2.3, "lr": 1e-4})
    write_loss_curve(save_dir / "metrics.jsonl", save_dir / "loss_curve.png")
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from guardrails.atomic_files import atomic_write, write_text_atomic

# Dense bf16 peak FLOP/s (no sparsity), by a substring of torch.cuda.get_device_name().
PEAK_FLOPS: dict[str, float] = {
    "H200": 989e12,
    "H100": 989e12,
    "A100": 312e12,
    "A10G": 125e12,
    "L40S": 362e12,
    "L4": 121e12,
    "V100": 125e12,
    "T4": 65e12,
}


def peak_flops_for(device: torch.device, configured: float = 0.0) -> float | None:
    """Peak FLOP/s: the configured value, else the table entry for this GPU, else None (unknown, e.g. CPU)."""
    if configured > 0:
        return configured
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, value in PEAK_FLOPS.items():
        if key in name:
            return value
    return None


def peak_memory_gb(device: torch.device) -> float:
    """This process's peak memory so far: the CUDA allocator's peak on a GPU, else the peak resident set (RSS)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1e9
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # Linux reports kibibytes


def _local_bytes(tensor: torch.Tensor) -> int:
    local = tensor.to_local() if hasattr(tensor, "to_local") else tensor  # an FSDP2 shard (DTensor): this rank's
    return local.numel() * local.element_size()


def model_state_gb(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> float:
    """What this process holds of the model state: its weights, gradients and optimizer moments (all of them
    under DDP, its shards under FSDP2), counted tensor by tensor (activations and buffers not included)."""
    total = 0
    for param in model.parameters():
        total += _local_bytes(param) + (_local_bytes(param.grad) if param.grad is not None else 0)
    for state in optimizer.state.values():
        total += sum(_local_bytes(v) for v in state.values() if isinstance(v, torch.Tensor) and v.dim() > 0)
    return total / 1e9


def flops_per_token(n_params: int, n_layer: int, hidden: int, seq_length: int) -> float:
    """Training FLOPs (forward + backward) per token of a dense decoder."""
    return 6.0 * n_params + 12.0 * n_layer * hidden * seq_length


class MetricsLogger:
    """Appends metrics to ``metrics.jsonl`` and TensorBoard; only rank 0 should create one."""

    def __init__(self, save_dir: Path, keep_through: int, tensorboard: bool = True, tracker: Any = None) -> None:
        """``keep_through``: the resumed checkpoint's iteration (-1 for a fresh run: nothing is kept);
        ``tracker``: another sink with ``log(kind, iteration, values)`` and ``close()`` (W&B)."""
        self.path = Path(save_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _truncate_after(self.path, keep_through)
        self._file = self.path.open("a", encoding="utf-8")
        self._writer = None
        self._tracker = tracker
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step drops events a killed run wrote after the checkpoint we resumed from
            self._writer = SummaryWriter(str(Path(save_dir) / "tensorboard"), purge_step=keep_through + 1)

    def log(self, kind: str, iteration: int, values: dict[str, Any]) -> None:
        record = {"kind": kind, "iteration": int(iteration), "time": time.time(), **values}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._writer is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)):  # None (e.g. MFU without a known peak) is skipped
                    self._writer.add_scalar(f"{kind}/{key}", value, iteration)
        if self._tracker is not None:
            self._tracker.log(kind, iteration, values)

    def close(self) -> None:
        self._file.close()
        if self._writer is not None:
            self._writer.close()
        if self._tracker is not None:
            self._tracker.close()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    if not Path(path).exists():
        return []
    records = []
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            # a run killed mid-write leaves a partial last line; anything else is a real error
            if number != len(lines):
                raise ValueError(f"{path}:{number}: not a JSON object; delete the line or the file") from None
    return records


def _truncate_after(path: Path, iteration: int) -> None:
    kept = [r for r in read_metrics(path) if r.get("iteration", 0) <= iteration]
    if not path.exists():
        return
    write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in kept))


def write_loss_curve(metrics_path: Path, png_path: Path) -> Path | None:
    """Plot train and validation loss against iteration; returns the PNG path (None without data)."""
    records = read_metrics(metrics_path)
    train = [(r["iteration"], r["loss"]) for r in records if r.get("kind") == "train" and "loss" in r]
    valid = [(r["iteration"], r["loss"]) for r in records if r.get("kind") == "valid" and "loss" in r]
    if not train and not valid:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if train:
        ax.plot(*zip(*train), label="train loss", linewidth=1)
    if valid:
        ax.plot(*zip(*valid), "o-", label="validation loss")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss (targets only)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    try:
        with atomic_write(png_path) as handle:
            fig.savefig(handle, format="png")
    finally:
        plt.close(fig)
    return Path(png_path)
