"""Which samples the local engine reads, and how it averages them, checked against references written here.

- validation scores global batches ``0 .. eval_iters - 1``: samples ``k x global_batch_size ..``, not ``k ..``
  (every other engine test runs ``eval_iters: 1``, where both read the same);
- the data position is counted in samples: iteration ``i`` trains on samples ``[i x G, (i + 1) x G)``, also
  after a resume;
- gradient accumulation averages the micro-batches (the fork's update): the logged gradient norm is the norm
  of the mean of the per-micro-batch gradients, computed here with each pair run alone through the model.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from runconfig import load_section
from runconfig.training_section import TrainingConfig
from tests.local_engine_fixtures import run_overrides, tiny_release
from training import train_data
from training.engine import train
from training.model_init import load_start_model
from training.packed_dataset import build_packed_dataset

PAD = 4  # <fim_pad> of the fork tokenizer


def _config(tmp_path, base, **extra) -> TrainingConfig:
    values = {"micro_batch_size": 1, "global_batch_size": 2, "lr_warmup_samples": 0, "tensorboard": False, **extra}
    return load_section(None, "training", TrainingConfig, run_overrides(tmp_path, base, tmp_path / "run", **values))


def _row_loss(model: torch.nn.Module, row: dict[str, np.ndarray]) -> torch.Tensor:
    """The fork's loss of one packed row, each pair run alone: mean cross-entropy of its target labels."""
    tokens = torch.from_numpy(row["decoder_token_ids"].astype(np.int64))
    segments, is_inputs = row["decoder_segment_ids"], row["decoder_is_inputs"]
    losses = []
    for segment in sorted(set(segments.tolist()) - {0}):
        where = np.flatnonzero(segments == segment)
        logits = model(input_ids=tokens[where][None]).logits[0]
        targets = torch.from_numpy(~is_inputs[where][1:].astype(bool))  # labels that are target tokens
        losses.append(torch.nn.functional.cross_entropy(logits[:-1][targets], tokens[where][1:][targets],
                                                        reduction="none"))
    return torch.cat(losses).mean()


def test_validation_scores_the_first_eval_iters_global_batches(tmp_path):
    base = tiny_release(tmp_path, dropout=0.0)
    cfg = _config(tmp_path, base, train_iters=1, eval_iters=2, eval_interval=1)
    result = train(cfg, say=lambda _: None)
    valid = build_packed_dataset(cfg.valid_split_file, "valid", 4, 256, cfg.seed, tmp_path / "maps", PAD)
    model = load_start_model(base)[0].eval()
    with torch.no_grad():
        rows = [float(_row_loss(model, valid[i])) for i in range(4)]  # global batches 0 and 1 of 2 samples
    first_iteration, first_loss = result.valid_losses[0]
    assert first_iteration == 0  # the baseline, before any update
    assert first_loss == pytest.approx(np.mean(rows), rel=1e-5)
    assert first_loss != pytest.approx(np.mean([rows[0], rows[1], rows[1], rows[2]]), rel=1e-5)  # batch k, not k x G


@pytest.fixture
def recorded_reads(monkeypatch):
    """The sample indices the engine collates, per dataset (training.train_data.collate)."""
    reads: list[tuple[object, list[int]]] = []
    real = train_data.collate

    def collate(dataset, indices):
        reads.append((dataset, list(indices)))
        return real(dataset, indices)

    monkeypatch.setattr(train_data, "collate", collate)
    return reads


def _training_reads(reads: list[tuple[object, list[int]]]) -> list[list[int]]:
    return [indices for dataset, indices in reads if dataset.report.members[0].group == "train"]


def test_the_data_position_is_counted_in_samples_also_after_a_resume(tmp_path, recorded_reads):
    base = tiny_release(tmp_path, dropout=0.0)
    first = train(_config(tmp_path, base, train_iters=2, save_interval=2, eval_interval=10), say=lambda _: None)
    assert (first.iteration, first.consumed_samples) == (2, 4)
    assert _training_reads(recorded_reads) == [[0], [1], [2], [3]]
    recorded_reads.clear()
    resumed = train(_config(tmp_path, base, train_iters=3, save_interval=2, eval_interval=10), say=lambda _: None)
    assert (resumed.iteration, resumed.consumed_samples) == (3, 6)
    assert _training_reads(recorded_reads) == [[4], [5]]  # iteration 2: samples 2 x 2 and on


def test_gradient_accumulation_averages_the_micro_batches(tmp_path):
    base = tiny_release(tmp_path, dropout=0.0)
    cfg = _config(tmp_path, base, train_iters=1, eval_interval=10, clip_grad=1.0)
    train(cfg, say=lambda _: None)
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    grad_norm = next(r["grad_norm"] for r in logged if r["kind"] == "train")
    samples = build_packed_dataset(cfg.train_split_file, None, cfg.train_iters * cfg.global_batch_size, 256, cfg.seed,
                                   tmp_path / "maps", PAD)
    model = load_start_model(base)[0].train()
    loss = (_row_loss(model, samples[0]) + _row_loss(model, samples[1])) / 2  # two micro-batches of one row
    loss.backward()
    by_hand = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in model.parameters()
                                                    if p.grad is not None]))
    assert grad_norm == pytest.approx(float(by_hand), rel=1e-4)  # summed: twice as large
