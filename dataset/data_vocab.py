"""Which vocabulary a tokenized dataset needs, so a model too small for it is refused before any work.

A dataset written by ``dataset.preprocess`` names its tokenizer and vocabulary size in its manifest
(``PREFIX.preprocess.manifest.json``); data without one (e.g. written by the fork's own tools) is scanned
for its largest token id instead (a memory-mapped ``max``, about a second per GB)::

    need = data_vocab(Path("out/data/pairs_valid"))
    if need.vocab_size > model_vocab: ...   # need.tokenizer / need.source say where the number comes from
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dataset.indexed_dataset import IndexedDataset, index_file_path
from dataset.preprocess_manifest import read_manifest
from dataset.preprocess_outputs import ROLES, document_prefix
from dataset.tokenizer_match import data_manifest


@dataclass(frozen=True)
class DataVocab:
    prefix: str
    vocab_size: int  # every token id of the data is below it
    tokenizer: str  # the tokenizer file that wrote it, as the manifest records it ("" when unknown)
    source: str  # where vocab_size comes from: the manifest, or the largest id in the data


def data_vocab(prefix: Path) -> DataVocab:
    """The vocabulary the datasets ``PREFIX_{inputs,targets}_document`` need (see the module docstring); a
    raw-document prefix (``PREFIX_content_document``, whose own ``.idx`` exists) is one dataset."""
    manifest = data_manifest(prefix)
    if manifest is not None:
        tokenizer = read_manifest(manifest).get("tokenizer", {})
        if isinstance(tokenizer, dict) and isinstance(tokenizer.get("vocab_size"), int):
            return DataVocab(str(prefix), tokenizer["vocab_size"], str(tokenizer.get("path", "")), str(manifest))
    raw = index_file_path(prefix).exists()
    largest = -1
    for name in [str(prefix)] if raw else [document_prefix(str(prefix), role) for role in ROLES]:
        tokens = IndexedDataset(name).tokens
        if tokens.size:
            largest = max(largest, int(tokens.max()))
    where = f"{prefix}.bin" if raw else f"{prefix}_*_document.bin"
    return DataVocab(str(prefix), largest + 1, "", f"the largest token id in {where}")
