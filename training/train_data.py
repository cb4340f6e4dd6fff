"""The local engine's data: the fork's packed samples, cut into this rank's micro-batches, as ``MTFBatch``.

With ``training.mode: pretrain`` the samples are the fork's GPT samples instead (``training.pretrain_data``).

The train group of ``training.train_split_file`` is built for ``train_iters x global_batch_size``
samples; every group of ``training.valid_split_file`` for ``eval_iters x global_batch_size``. Sample
order is the fork's (deterministic from the index maps), so the data position of a run is just the
number of consumed samples. Index maps are cached in ``SAVE/index_maps`` (rank 0 builds them while the
other ranks wait, then everyone reads them).

Validation always scores the *first* ``eval_iters`` global batches of each valid group, so successive
validation losses are comparable (the fork instead walks on through the valid set).

    data = build_run_data(cfg, env, pad_id, cache_dir)
    for batch in micro_batches(data.train, consumed, cfg, env, pad_id): ...
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from dataset.data_vocab import data_vocab
from dataset.split_files import parse_split_file, resolve_prefix
from dataset.split_overlap import split_files_overlap
from dataset.tokenizer_match import check_data_tokenizer
from dataset.text_tokenizer import TextTokenizer
from training.distributed import DistEnv, barrier, rank_micro_batches
from training.model_init import tokenizer_ids
from training.mtf_batch import MTFBatch, get_batch
from training.packed_dataset import BlendedPackedDataset, PackedMTFDataset, build_packed_dataset
from training.pretrain_data import PretrainDataset, build_pretrain_datasets

PackedDataset = PackedMTFDataset | BlendedPackedDataset | PretrainDataset


@dataclass
class RunData:
    train: PackedDataset
    valid: dict[str, PackedDataset] = field(default_factory=dict)

    @property
    def skipped_pairs(self) -> int:
        """Over-long pairs the training group skips (as the fork does)."""
        return self.train.report.skipped_pairs


def resolve_pad_id(cfg: Any, model_config: Any) -> int:
    """``training.pad_id``, else ``<fim_pad>`` of ``training.tokenizer``, else the model config's pad id; refused
    (before anything is written) when it is no token of the model."""
    if cfg.pad_id >= 0:
        pad, where = cfg.pad_id, "training.pad_id"
    elif cfg.tokenizer:
        pad, where = tokenizer_ids(Path(cfg.tokenizer))["pad"], f"<fim_pad> of {cfg.tokenizer}"
        if pad is None:
            raise ValueError(f"{cfg.tokenizer}: no <fim_pad> token; set training.pad_id to the padding id")
    else:
        pad, where = getattr(model_config, "pad_token_id", None), "the model config's pad_token_id"
        if pad is None:
            raise ValueError("cannot tell the padding id: set training.tokenizer (tokenizer.json with <fim_pad>)"
                             " or training.pad_id")
    if not 0 <= int(pad) < model_config.vocab_size:  # else the embedding lookup fails mid-run
        raise ValueError(f"{where} is {pad}, but the model in training.load has {model_config.vocab_size} token"
                         f" embeddings (ids 0 .. {model_config.vocab_size - 1}); give a padding id below that")
    return int(pad)


def check_data_fits_model(cfg: Any, model_vocab_size: int, model_source: str) -> list[str]:
    """Refuse data the model cannot embed (torch would fail mid-run with an ``IndexError``) or that another
    tokenizer than ``training.tokenizer`` made (``dataset.tokenizer_match``); called before anything is written.
    Returns the warnings to print: data no manifest vouches for, validation reading training documents
    (``dataset.split_overlap``, as ``dataset.splits plan`` warns). Pretraining's raw documents must fit as well as
    ``training.tokenizer``, which ``pretrain_data`` reads its EOD and FIM tokens from."""
    warnings: list[str] = []
    if cfg.mode == "pretrain":
        if cfg.tokenizer:  # an empty one is refused by build_pretrain_datasets, naming the key
            vocab_size = TextTokenizer(cfg.tokenizer).vocab_size
            if vocab_size > model_vocab_size:
                raise ValueError(f"{cfg.tokenizer}: {vocab_size} tokens, but the model in training.load has only "
                                 f"{model_vocab_size} embeddings; pretrain with the model's own tokenizer")
        prefixes = [(Path(cfg.pretrain.data_path), "training.pretrain.data_path")] if cfg.pretrain.data_path else []
    else:
        prefixes = [(resolve_prefix(entry.prefix, Path(split_file)), split_file)
                    for split_file in (cfg.train_split_file, cfg.valid_split_file) if split_file
                    for group in parse_split_file(split_file) for entry in group.datasets]
        warnings += [f"warning: {line}" for line in split_files_overlap(cfg.train_split_file, cfg.valid_split_file)]
    named: dict[Path, str] = {}
    for prefix, named_in in prefixes:
        named.setdefault(prefix, named_in)  # a prefix in both split files is named by the first
    for prefix, named_in in named.items():
        if cfg.tokenizer:
            warnings += [w for w in [check_data_tokenizer(prefix, cfg.tokenizer)] if w]
        need = data_vocab(prefix)
        if need.vocab_size > model_vocab_size:
            tokenizer = f"tokenizer {need.tokenizer}" if need.tokenizer else "an unknown tokenizer"
            raise ValueError(
                f"{need.prefix} (in {named_in}) was tokenized with {tokenizer} of {need.vocab_size}"
                f" tokens ({need.source}), but the model {model_source} has {model_vocab_size} token"
                " embeddings; tokenize the data with the model's tokenizer, or start from a model built"
                " for this one (python -m training.model_init --tokenizer ...)")
    return warnings


def build_run_data(cfg: Any, env: DistEnv, pad_id: int, cache_dir: Path) -> RunData:
    """Train and valid datasets; rank 0 first so that only one process writes the index-map cache."""
    if not cfg.train_split_file and cfg.mode != "pretrain":
        raise ValueError("training.train_split_file is empty: point it at the train split file (splits stage)")
    data: RunData | None = None
    for turn in (0, 1):
        if (turn == 0) == env.is_main:
            data = _build(cfg, pad_id, cache_dir)
        barrier(env)
    assert data is not None
    needed = cfg.train_iters * cfg.global_batch_size
    if data.train.usable_length < needed:
        raise ValueError(
            f"{cfg.train_split_file}: {data.train.usable_length} packed samples, the run needs {needed}"
        )
    if cfg.mode == "pretrain":  # GPT samples: every requested sample exists (more epochs if need be)
        return data
    needed = cfg.eval_iters * cfg.global_batch_size
    for name, dataset in data.valid.items():
        if dataset.usable_length < needed:  # a blended group's tail can run short; fail now, not at eval
            raise ValueError(f"{cfg.valid_split_file}: group {name!r} has {dataset.usable_length} packed"
                             f" samples, validation needs {needed} (eval_iters x global_batch_size)")
    return data


def describe_run_data(data: RunData) -> list[str]:
    """One block per group: the documents each dataset reads (legacy offsets included), rows, skips."""
    return [dataset.report.describe() for dataset in (data.train, *data.valid.values())]


def _build(cfg: Any, pad_id: int, cache_dir: Path) -> RunData:
    if cfg.mode == "pretrain":  # raw documents with FIM (pretrain_gpt.py) instead of packed pairs
        train, valid = build_pretrain_datasets(cfg, cache_dir)
        return RunData(train=train, valid=dict(valid))
    train = build_packed_dataset(
        Path(cfg.train_split_file), None, cfg.train_iters * cfg.global_batch_size, cfg.seq_length, cfg.seed,
        cache_dir, pad_id, cfg.legacy_split_offsets,
    )
    data = RunData(train=train)
    if cfg.valid_split_file and cfg.eval_iters > 0:
        for group in parse_split_file(cfg.valid_split_file):
            data.valid[group.name] = build_packed_dataset(
                Path(cfg.valid_split_file), group.name, cfg.eval_iters * cfg.global_batch_size, cfg.seq_length,
                cfg.seed, cache_dir, pad_id, cfg.legacy_split_offsets,
            )
    return data


def collate(dataset: Any, indices: list[int]) -> dict[str, torch.Tensor]:
    items = [dataset[i] for i in indices]
    return {key: torch.from_numpy(np.stack([item[key] for item in items])) for key in items[0]}


def micro_batches(
    dataset: Any, consumed: int, cfg: Any, env: DistEnv, pad_id: int
) -> Iterator[MTFBatch]:
    """This rank's micro-batches of the global batch that starts at sample ``consumed``, on ``env.device``."""
    for indices in rank_micro_batches(consumed, cfg.global_batch_size, cfg.micro_batch_size, env):
        # the rows go to the device first and the masks are built there: the [B, 1, T, T] attention mask
        # costs far more to build on the CPU and copy over than the [B, T+1] rows
        rows = {key: value.to(env.device, non_blocking=True) for key, value in collate(dataset, indices).items()}
        if hasattr(dataset, "batch"):  # pretraining rows (training.pretrain_data) build their own masks
            yield dataset.batch(rows, pad_id)
        else:
            yield get_batch(rows, pad_id, cfg.norm_target_loss, cfg.loss_on_targets_only)
