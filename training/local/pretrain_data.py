"""The local engine's data in ``training.mode: pretrain``: the fork's GPT samples of ``training.pretrain.data_path``.

Train: split 0 of ``pretrain.split`` with ``train_iters x global_batch_size`` samples; valid: split 1 with
the count Megatron asks for (``(train_iters // eval_interval + 1) x eval_iters x global_batch_size``), so the
index-map files carry the fork's names (``training.samples.gpt_index_cache``, in ``SAVE/index_maps``). FIM follows
``pretrain.fim_*`` (``training.samples.fim``, tokens by name from ``training.tokenizer``); item ``i`` is the fork's
in-order item ``i`` whatever the rank or resume point (``training.samples.gpt_dataset``). Batches are built by
``training.samples.gpt_batch`` with the ``pretrain.reset_*`` / ``eod_mask_loss`` options.

    data = build_pretrain_data(cfg, cache_dir)      # RunData, as training.local.train_data builds for fine-tuning
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from dataset.splitting.gpt_split_planner import gpt_num_samples
from training.samples.fim import FimSettings
from training.samples.gpt_batch import DocumentMasking, get_gpt_batch
from training.samples.gpt_dataset import BuiltSamples, GPTSampleSettings, build_gpt_samples
from training.samples.mtf_batch import MTFBatch


@dataclass
class PretrainReport:
    """What ``describe_run_data`` prints for one split."""

    built: BuiltSamples
    skipped_pairs: int = 0  # nothing is skipped: samples run across documents

    def describe(self) -> str:
        plan, b = self.built.samples.index.plan, self.built
        return (f"{b.name}: documents [{b.documents.start}, {b.documents.stop}) of "
                f"{b.samples.documents.prefix}: {plan.tokens_per_epoch} tokens, {plan.samples_per_epoch} samples"
                f" per epoch, {len(b.samples)} samples over {plan.epochs} epoch(s)"
                f"{' (last shuffled separately)' if plan.separate_last_epoch else ''}; FIM "
                f"{'off' if b.samples.fim is None else f'rate {b.samples.fim.settings.rate}'}; "
                f"{'built' if b.rebuilt else 'cached'}: {b.files.base.name}_*_idx.npy")


class PretrainDataset:
    """GPT samples as the engine reads them: ``{"text": row}`` items and :meth:`batch`."""

    def __init__(self, built: BuiltSamples, masking: DocumentMasking) -> None:
        self.samples, self.masking = built.samples, masking
        self.report = PretrainReport(built)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def usable_length(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        return {"text": self.samples[i]}

    def batch(self, rows: dict[str, torch.Tensor], pad_id: int) -> MTFBatch:
        """One micro-batch; padding is FIM's ``<fim_pad>`` when FIM is on, else ``pad_id``."""
        fim = self.samples.fim
        pad = fim.tokens.pad if fim is not None else pad_id
        return get_gpt_batch(rows["text"], self.samples.eod, pad, self.masking)


def build_pretrain_datasets(cfg: Any, cache_dir: Any) -> tuple[PretrainDataset, dict[str, PretrainDataset]]:
    """Train and valid datasets of ``cfg`` (a ``TrainingConfig`` with ``mode: pretrain``)."""
    p = cfg.pretrain
    if not p.data_path:
        raise ValueError("training.pretrain.data_path is empty: point it at PREFIX_content_document "
                         "(python -m dataset.preprocess --keys content --append-eod)")
    if not cfg.tokenizer:
        raise ValueError("training.tokenizer is empty: pretraining needs the tokenizer.json of the data (EOD, FIM)")
    fim = FimSettings(p.fim_rate, p.fim_spm_rate, p.fim_split_sample or None, p.fragment_fim_rate)
    masking = DocumentMasking(p.reset_position_ids, p.reset_attention_mask, p.eod_mask_loss)

    def split(index: int, num_samples: int) -> PretrainDataset:
        settings = GPTSampleSettings(p.data_path, cfg.tokenizer, cfg.seq_length, num_samples, cfg.seed, p.split,
                                     index, fim)
        return PretrainDataset(build_gpt_samples(settings, cache_dir), masking)

    counts = {name: gpt_num_samples(name, cfg.train_iters, cfg.global_batch_size, cfg.eval_interval, cfg.eval_iters)
              for name in ("train", "valid")}
    train = split(0, counts["train"])
    valid = {"valid": split(1, counts["valid"])} if counts["valid"] > 0 else {}
    return train, valid
