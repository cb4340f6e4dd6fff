"""The fork's GPT pretraining samples: rows of ``seq_length + 1`` tokens read across documents, with FIM.

``GPTSamples[i]`` is what the fork's ``GPTDataset.__getitem__(i)`` returns (branch ``multi-query-attention``)
when items ``0 .. i`` are read in order on a fresh object: ``shuffle_idx`` picks the raw sample,
``sample_idx``/``doc_idx`` give its ``seq_length + 1`` tokens (the documents' EODs included), and with a FIM
rate the sample goes through ``training.samples.fim.FimPermuter``. FIM draws from one generator whose state carries
from item to item, so the fork's item ``i`` depends on every item read before it. Here item ``i`` is always
the fork's in-order item ``i``, whatever the access order: a read that skips ahead transforms (and drops) the
items in between, a read that goes back starts the generator over. In-order reading costs nothing extra;
several ranks each read every item, and a resume replays the consumed items, which makes a resumed run
identical to an uninterrupted one (the fork's own data loader restarts the generator instead).

``build_gpt_samples`` is the fork's ``build_train_valid_test_datasets`` for one data prefix and one split:
``--split`` document ranges (``dataset.splitting.gpt_index``), index maps through the key-checked cache
(``training.samples.gpt_index_cache``), FIM tokens looked up by name. Library module; the command is
``training.gpt_samples``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from dataset.splitting.gpt_index import GPTIndex, GPTIndexError, split_document_ranges
from dataset.formats.indexed_dataset import IndexedDataset
from dataset.formats.text_tokenizer import TextTokenizer
from training.samples.fim import FimPermuter, FimSettings, lookup_fim_tokens
from training.samples.gpt_index_cache import GPTIndexFiles, load_or_build_gpt_index

SPLIT_NAMES = ("train", "valid", "test")


@dataclass(frozen=True)
class GPTSampleSettings:
    """One split of one data prefix, as the fork's ``pretrain_gpt.py`` flags describe it."""

    data_prefix: str
    tokenizer: str
    seq_length: int
    num_samples: int
    seed: int = 1234
    split: str = "969,30,1"
    split_index: int = 0
    fim: FimSettings = FimSettings()

    def __post_init__(self) -> None:
        if self.split_index not in (0, 1, 2):
            raise ValueError(f"split_index must be 0 (train), 1 (valid) or 2 (test), got {self.split_index}")
        if self.seq_length < 2 or self.num_samples < 0:
            raise ValueError(f"need seq_length >= 2 and num_samples >= 0, got {self.seq_length}, {self.num_samples}")


class GPTSamples:
    """Items of one split: raw samples through the index maps, FIM applied in reading order."""

    def __init__(self, documents: IndexedDataset, index: GPTIndex, eod: int, fim: FimPermuter | None) -> None:
        self.documents, self.index, self.eod, self.fim = documents, index, eod, fim
        self._next = 0  # the item the FIM generator is positioned for
        self._last: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.index.sample_idx.shape[0] - 1

    def raw(self, i: int) -> np.ndarray:
        """The ``seq_length + 1`` tokens of item ``i`` before FIM (int64)."""
        doc_idx, sample_idx = self.index.doc_idx, self.index.sample_idx
        j = int(self.index.shuffle_idx[i])
        (first, offset_first), (last, offset_last) = sample_idx[j], sample_idx[j + 1]
        if first == last:
            tokens = self.documents.get(int(doc_idx[first]), int(offset_first), int(offset_last - offset_first + 1))
        else:
            parts = [self.documents.get(int(doc_idx[first]), int(offset_first))]
            parts += [self.documents[int(doc_idx[k])] for k in range(first + 1, last)]
            parts.append(self.documents.get(int(doc_idx[last]), 0, int(offset_last) + 1))
            tokens = np.concatenate(parts)
        return tokens.astype(np.int64)

    def __getitem__(self, i: int) -> np.ndarray:
        """Item ``i``: the fork's item ``i`` of an in-order read (see the module docstring)."""
        if self.fim is None:
            return self.raw(i)
        if not 0 <= i < len(self):
            raise IndexError(f"item {i} of {len(self)}")
        if self._last is not None and self._last[0] == i:
            return self._last[1]
        if i < self._next:  # going back: replay from a fresh generator
            self.fim.reset()
            self._next = 0
        while self._next < i:
            self.fim(self.raw(self._next))
            self._next += 1
        row = self.fim(self.raw(i))
        self._next, self._last = i + 1, (i, row)
        return row

    def rows(self, count: int) -> Iterator[np.ndarray]:
        """Items ``0 .. count - 1`` in order."""
        for i in range(count):
            yield self[i]


@dataclass
class BuiltSamples:
    samples: GPTSamples
    name: str
    documents: range
    files: GPTIndexFiles
    rebuilt: bool


def build_gpt_samples(settings: GPTSampleSettings, cache_dir: str | os.PathLike) -> BuiltSamples:
    """The split's samples, index maps from (or into) ``cache_dir`` under the fork's names."""
    documents = IndexedDataset(settings.data_prefix)
    bounds = split_document_ranges(settings.split, len(documents))
    name = SPLIT_NAMES[settings.split_index]
    chosen = range(bounds[settings.split_index], bounds[settings.split_index + 1])
    if len(chosen) == 0:
        raise GPTIndexError(f"--split {settings.split} gives the {name} split no documents of the "
                            f"{len(documents)} in {settings.data_prefix}; give it a larger share")
    tokenizer = TextTokenizer(settings.tokenizer)
    fim = None
    if settings.fim.rate > 0:  # at rate 0 the fork never looks the FIM tokens up
        tokens = lookup_fim_tokens(tokenizer, settings.fim.split_sample)
        fim = FimPermuter(tokenizer, tokens, settings.fim, tokenizer.eod_id, settings.seed)
    files = GPTIndexFiles.for_dataset(cache_dir, Path(settings.data_prefix), name, settings.num_samples,
                                      settings.seq_length, settings.seed)
    cached = load_or_build_gpt_index(files, settings.data_prefix, documents.sizes, chosen, settings.num_samples,
                                     settings.seq_length, settings.seed)
    return BuiltSamples(GPTSamples(documents, cached.index, tokenizer.eod_id, fim), name, chosen, files,
                        cached.rebuilt)
