"""The tokenizer the preprocess stage uses: a ``tokenizer.json`` read exactly as the fork's ``TokenizerFromFile``.

Used by ``dataset.preprocess`` and ``training.samples.fim`` (not a command). The fork builds
``PreTrainedTokenizerFast(tokenizer_file=...)``, adds ``<|endoftext|>`` as an additional special token, and tokenizes with ``.encode(text)`` (special tokens in
the text become single ids; the file's post-processor runs). Here the same is done with the Rust
``tokenizers.Tokenizer`` directly, batched with ``encode_batch_fast`` (no offsets), which releases the GIL and
spreads a batch over the Rayon thread pool (the preprocess workers keep it to one thread each).
``vocab_size`` is the fork's ``len(tokenizer)`` (added tokens included): it picks the token dtype (uint16
below 65,500, else int32).

A tokenizer that has no ``<|endoftext|>`` of its own but names an end-of-sequence token in the
``tokenizer_config.json`` beside it (Llama, Mistral: ``</s>``) ends documents with that token instead: adding
``<|endoftext|>`` as the fork does would give it an id past the model's embeddings. Every tokenizer that has
``<|endoftext|>`` (StarCoder's, the fork's fixtures, the demo's) is read exactly as the fork reads it.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np
from tokenizers import AddedToken, Tokenizer

from dataset.formats.indexed_dataset import token_dtype

EOD_TOKEN = "<|endoftext|>"


class TokenizerFileError(ValueError):
    """A tokenizer file that cannot be used; the message names the file and the fix."""


@dataclass(frozen=True)
class EncodedBatch:
    """Token ids of a batch of texts, back to back: text ``i`` is the ``lengths[i]`` ids after those of texts < i."""

    tokens: np.ndarray
    lengths: np.ndarray


class TextTokenizer:
    """A ``tokenizer.json`` with the fork's EOD handling, vocab size and dtype."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise TokenizerFileError(f"{self.path}: cannot read tokenizer ({exc.strerror}); pass --tokenizer") from exc
        try:
            self._tokenizer = Tokenizer.from_str(data.decode("utf-8"))
        except Exception as exc:  # the Rust loader raises plain Exception subclasses
            raise TokenizerFileError(f"{self.path}: not a Hugging Face tokenizer.json ({exc})") from exc
        self.sha256 = hashlib.sha256(data).hexdigest()
        eod = None if self._tokenizer.token_to_id(EOD_TOKEN) is not None else self._configured_eos()
        if eod is None:
            # The fork: add_special_tokens({"additional_special_tokens": [EOD]}), then vocab[EOD].
            self._tokenizer.add_special_tokens([AddedToken(EOD_TOKEN, special=True, normalized=False)])
            eod = self._tokenizer.token_to_id(EOD_TOKEN)
        if eod is None:  # cannot happen after add_special_tokens; guard the invariant anyway
            raise TokenizerFileError(f"{self.path}: no id for {EOD_TOKEN}")
        self.eod_id: int = eod
        self.vocab_size: int = self._tokenizer.get_vocab_size(with_added_tokens=True)
        self.dtype: np.dtype = token_dtype(self.vocab_size)

    def _configured_eos(self) -> int | None:
        """The id of ``eos_token`` of the ``tokenizer_config.json`` beside the file, when it is in the vocabulary."""
        config = self.path.with_name("tokenizer_config.json")
        try:
            eos = json.loads(config.read_text(encoding="utf-8")).get("eos_token")
        except (OSError, ValueError, AttributeError):
            return None
        eos = eos.get("content") if isinstance(eos, dict) else eos
        return self._tokenizer.token_to_id(eos) if isinstance(eos, str) else None

    def encode_batch(self, texts: list[str]) -> EncodedBatch:
        """Many texts at once (GIL released while the Rust side works)."""
        encodings = self._tokenizer.encode_batch_fast(texts)
        ids = [e.ids for e in encodings]
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        tokens = np.fromiter(chain.from_iterable(ids), dtype=self.dtype, count=int(lengths.sum()))
        return EncodedBatch(tokens, lengths)

    def encode(self, text: str) -> list[int]:
        """One text, as the fork's ``tokenize`` (``PreTrainedTokenizerFast.encode``: post-processor included)."""
        return self._tokenizer.encode(text).ids

    def decode(self, ids: list[int]) -> str:
        """Ids back to text as the fork's ``detokenize``: special tokens kept as text, bad UTF-8 as U+FFFD.

        No clean-up of spaces before punctuation (transformers 4.x did that by default; the fork's FIM
        goldens were made without it, and it would move FIM's character-level split points).
        """
        return self._tokenizer.decode(ids, skip_special_tokens=False)

    def token_id(self, name: str) -> int | None:
        """The id of the vocabulary entry ``name`` (added tokens included), or None."""
        return self._tokenizer.token_to_id(name)
