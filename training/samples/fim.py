"""Fill-in-the-middle (FIM) as the fork applies it to each GPT pretraining sample, draw for draw.

What ``GPTDataset.__getitem__`` and ``permute`` do on the fork's ``multi-query-attention`` branch (golden
files and the full description: tests/fixtures/fork_fim/README.md):

* one ``np.random.RandomState(seed)`` per dataset, apart from the index maps' generator; its state carries
  from one sample to the next, so samples must be read in order on one object to match the fork;
* a sample is cut at every EOD: a non-empty piece is transformed and followed by EOD, an empty one (the
  sample starts with EOD, or two EODs touch) is dropped with its EOD; the piece after the last EOD is always
  transformed, even empty (it still draws);
* with ``split_sample`` (e.g. ``<filename>``) a piece holding that token draws once with ``rate``, then every
  fragment between split tokens is permuted with ``fragment_rate`` (same dropping rule, split token kept);
* ``permute``: draw ``binomial(1, rate)``; decode to text; draw two *character* positions with
  ``randint(0, len(text) + 1, size=2)``, sorted; re-encode prefix, middle and suffix each on its own; draw
  ``binomial(1, spm_rate)``: 1 gives SPM ``<fim_prefix> <fim_suffix> suffix <fim_middle> prefix middle``,
  0 gives PSM ``<fim_prefix> prefix <fim_suffix> suffix <fim_middle> middle``;
* the result is cut to the sample's length, or right-padded with ``<fim_pad>``.

The FIM tokens are looked up by name (:func:`lookup_fim_tokens`); a tokenizer without them is an error, never
a guess by position. Library module (used by ``training.gpt_samples``); no command line.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX, FIM_PAD = "<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>"


class FimTokenError(ValueError):
    """A FIM token the tokenizer does not have as one token; the message names the tokenizer and the token."""


class TextCodec(Protocol):
    """What FIM needs of a tokenizer (``dataset.formats.text_tokenizer.TextTokenizer`` has it)."""

    path: object

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...

    def token_id(self, name: str) -> int | None: ...


@dataclass(frozen=True)
class FimTokens:
    """Ids of the FIM sentinels and of the optional split token."""

    prefix: int
    middle: int
    suffix: int
    pad: int
    split: int | None = None


@dataclass(frozen=True)
class FimSettings:
    """The fork's ``--fim-rate``, ``--fim-spm-rate``, ``--fim-split-sample`` and ``--fragment-fim-rate``."""

    rate: float = 0.0
    spm_rate: float = 0.5
    split_sample: str | None = None
    fragment_rate: float = 0.5

    def __post_init__(self) -> None:
        for name in ("rate", "spm_rate", "fragment_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"FIM {name} must be between 0 and 1, got {value}")


def lookup_token(codec: TextCodec, name: str, option: str) -> int:
    """The id of ``name``, which must be one vocabulary entry that encodes back to itself."""
    token = codec.token_id(name)
    if token is None:
        pieces = codec.encode(name)
        raise FimTokenError(
            f"{codec.path}: {option} needs the token {name!r}, which this tokenizer does not have (it encodes "
            f"to {len(pieces)} tokens {pieces[:8]}); use a StarCoder-style tokenizer with FIM tokens, or add "
            f"{name!r} as a special token")
    encoded = codec.encode(name)
    if encoded != [token]:
        raise FimTokenError(
            f"{codec.path}: {option}: {name!r} is id {token} but the text {name!r} encodes to {encoded}, not one "
            f"token; add it as a special token so that FIM's re-encoding keeps it whole")
    return token


def lookup_fim_tokens(codec: TextCodec, split_sample: str | None = None) -> FimTokens:
    """The four sentinels (and the split token) by name; :class:`FimTokenError` names any that is missing."""
    ids = [lookup_token(codec, name, "--fim-rate") for name in (FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX, FIM_PAD)]
    split = lookup_token(codec, split_sample, "--fim-split-sample") if split_sample is not None else None
    return FimTokens(*ids, split=split)


class FimPermuter:
    """Applies FIM to samples one after the other, with its own generator (see the module docstring)."""

    def __init__(self, codec: TextCodec, tokens: FimTokens, settings: FimSettings, eod: int, seed: int) -> None:
        self.codec, self.tokens, self.settings, self.eod, self.seed = codec, tokens, settings, eod, seed
        self.reset()

    def reset(self) -> None:
        """Back to the state of a fresh dataset (the next sample is transformed as the fork's item 0)."""
        self.rng = np.random.RandomState(seed=self.seed)

    def __call__(self, sample: np.ndarray) -> np.ndarray:
        """The FIM form of ``sample`` (int64), as long as ``sample``; draws nothing when the rate is 0."""
        sample = np.asarray(sample, dtype=np.int64)
        if self.settings.rate == 0:
            return sample
        pieces = _split_on(sample, self.eod, self._split_and_permute)
        out = np.concatenate(pieces).astype(np.int64)
        if len(out) >= len(sample):
            return out[:len(sample)]
        return np.concatenate([out, np.full(len(sample) - len(out), self.tokens.pad, dtype=np.int64)])

    def _split_and_permute(self, segment: np.ndarray) -> np.ndarray:
        split = self.tokens.split
        if split is None or not (segment == split).any():
            return self._permute(segment, self.settings.rate)
        if not self.rng.binomial(1, self.settings.rate):
            return segment
        return np.concatenate(_split_on(segment, split, lambda s: self._permute(s, self.settings.fragment_rate)))

    def _permute(self, segment: np.ndarray, rate: float) -> np.ndarray:
        if not self.rng.binomial(1, rate):
            return segment
        text = self.codec.decode(segment.tolist())
        start, end = sorted(self.rng.randint(low=0, high=len(text) + 1, size=2))
        prefix, middle, suffix = (np.array(self.codec.encode(part), dtype=np.int64)
                                  for part in (text[:start], text[start:end], text[end:]))
        t = self.tokens
        if self.rng.binomial(1, self.settings.spm_rate):
            return np.concatenate([[t.prefix, t.suffix], suffix, [t.middle], prefix, middle])
        return np.concatenate([[t.prefix], prefix, [t.suffix], suffix, [t.middle], middle])


def _split_on(sequence: np.ndarray, token: int, transform) -> list[np.ndarray]:
    """Cut at each ``token``: ``transform(piece)`` then ``token`` for non-empty pieces (an empty piece and its
    token are dropped), then ``transform`` of the rest after the last ``token``, even when empty."""
    pieces: list[np.ndarray] = []
    start = 0
    for loc in np.flatnonzero(sequence == token):
        if loc > start:
            pieces += [transform(sequence[start:loc]), np.array([token], dtype=np.int64)]
        start = loc + 1
    pieces.append(transform(sequence[start:]))
    return pieces
