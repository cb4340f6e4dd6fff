"""Train a byte-level BPE tokenizer with StarCoder's special-token layout (ids 0..18).

The code of ``python -m dataset.train_tokenizer``; how to run it and what it does: the docstring of its entry point
``dataset/train_tokenizer.py``.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from guardrails.file_set import atomic_file_set
from guardrails.output_paths import claim_file
from guardrails.output_records import OutputKind, sidecar_record
from dataset.formats.jsonl_records import REASONS, InputFileError, LongLine, RecordIssue, iter_chunks, parse_chunk
from dataset.builders.octopack_format import END_OF_TEXT, STARCODER_SPECIAL_TOKENS
from runconfig.data_section import DataConfig

PAD_TOKEN = "<fim_pad>"
TOKENIZER_FILES = OutputKind("a tokenizer file", "dataset.train_tokenizer")
MAX_LINE_BYTES = DataConfig.max_line_bytes  # the line limit preprocess applies by default
_SPECIAL_PATTERN = re.compile("|".join(re.escape(t) for t in STARCODER_SPECIAL_TOKENS))


class TokenizerInputError(ValueError):
    """A training input that cannot be read; the message names the file, line and field."""


def build_untrained_tokenizer() -> Tokenizer:
    """The empty byte-level BPE pipeline, configured like StarCoder's (and the fork fixture's) tokenizer."""
    tokenizer = Tokenizer(models.BPE(fuse_unk=False, byte_fallback=False))
    tokenizer.normalizer = None
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    tokenizer.post_processor = processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    return tokenizer


def train_bpe(texts: Iterable[str], vocab_size: int = 8192, min_frequency: int = 2) -> Tokenizer:
    """Train on ``texts``; the vocabulary holds the 19 special tokens, the 256 byte symbols, then merges."""
    floor = len(STARCODER_SPECIAL_TOKENS) + len(pre_tokenizers.ByteLevel.alphabet())
    if vocab_size < floor:
        raise ValueError(f"vocab_size {vocab_size} is below {floor} (special tokens + the 256 byte symbols)")
    tokenizer = build_untrained_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        show_progress=False,
        special_tokens=[AddedToken(t, special=True, normalized=False) for t in STARCODER_SPECIAL_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(_without_special_tokens(texts), trainer=trainer)
    return tokenizer


def _without_special_tokens(texts: Iterable[str]) -> Iterator[str]:
    for text in texts:
        for piece in _SPECIAL_PATTERN.split(text):
            if piece:
                yield piece


def read_training_texts(paths: Sequence[str | os.PathLike], keys: Sequence[str] = ("inputs", "targets")) -> Iterator[str]:
    """The texts in ``paths``: both fields of each record of ``.jsonl``/``.jsonl.gz`` files, read strictly by
    ``dataset.formats.jsonl_records`` (exactly what ``dataset.preprocess`` accepts), and the whole of any other file."""
    if len(keys) != 2:
        raise TokenizerInputError(f"--keys names the two record fields (inputs, targets), got {list(keys)}")
    for path in map(Path, paths):
        if not path.is_file():
            raise TokenizerInputError(f"{path}: no such file; check the --inputs paths")
    for path in map(Path, paths):
        if not path.name.endswith((".jsonl", ".jsonl.gz")):
            yield _read_text(path)
            continue
        try:
            for chunk in iter_chunks(path, MAX_LINE_BYTES):
                if isinstance(chunk, LongLine):
                    raise TokenizerInputError(_describe(chunk.issue(MAX_LINE_BYTES)))
                parsed = parse_chunk(chunk, (keys[0], keys[1]), MAX_LINE_BYTES)
                if parsed.issues:
                    raise TokenizerInputError(_describe(parsed.issues[0][1]))
                for inputs, targets in zip(parsed.inputs, parsed.targets):
                    yield inputs
                    yield targets
        except InputFileError as exc:
            raise TokenizerInputError(str(exc)) from exc


def _describe(issue: RecordIssue) -> str:
    return f"{issue.summary()}. Fix: {REASONS[issue.reason]}"  # no --skip-invalid here


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise TokenizerInputError(f"{path}: byte {exc.start} is not UTF-8; convert the file to UTF-8") from exc


def hf_config_files(model_max_length: int = 8192) -> dict[str, dict]:
    """``tokenizer_config.json`` and ``special_tokens_map.json`` for ``AutoTokenizer.from_pretrained``."""
    named = {"bos_token": END_OF_TEXT, "eos_token": END_OF_TEXT, "unk_token": END_OF_TEXT, "pad_token": PAD_TOKEN}
    additional = [t for t in STARCODER_SPECIAL_TOKENS if t not in (END_OF_TEXT, PAD_TOKEN)]
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        **named,
        "additional_special_tokens": additional,
        "model_max_length": model_max_length,
        "clean_up_tokenization_spaces": False,
        "add_prefix_space": False,
    }
    return {"tokenizer_config.json": config,
            "special_tokens_map.json": {**named, "additional_special_tokens": additional}}


def output_names(output: str | os.PathLike) -> list[Path]:
    """``output`` (tokenizer.json) and the HF config files written beside it."""
    output = Path(output)
    return [output, *(output.with_name(name) for name in hf_config_files())]


def claim_tokenizer_files(output: str | os.PathLike, inputs: Sequence[str] = ()) -> None:
    """Refuse, before any work, when one of the files would replace what no record of this command proves."""
    for path in output_names(output):  # all refused before any is written: a user's file never goes, nor half the set
        claim_file(path, TOKENIZER_FILES, "--output", inputs=inputs, record=sidecar_record(output))


def save_tokenizer(tokenizer: Tokenizer, output: str | os.PathLike) -> list[Path]:
    """Write ``output`` (tokenizer.json), the HF config files beside it and their record, all appearing together
    (an interrupted run leaves the old set, never a new tokenizer beside old config files); returns the paths."""
    output = Path(output)
    claim_tokenizer_files(output)
    contents = {output.name: tokenizer.to_str(pretty=True) + "\n"}
    for name, data in hf_config_files().items():
        contents[name] = json.dumps(data, indent=2) + "\n"
    with atomic_file_set(output, TOKENIZER_FILES) as files:
        for name, text in contents.items():
            files.temporary(output.with_name(name)).write_bytes(text.encode("utf-8"))
    return [output.with_name(name) for name in contents]


class _Counted:
    """Passes texts through, counting them and the ones with more than whitespace."""

    def __init__(self, texts: Iterable[str]) -> None:
        self.texts, self.count, self.non_blank = texts, 0, 0

    def __iter__(self) -> Iterator[str]:
        for text in self.texts:
            self.count += 1
            self.non_blank += bool(text.strip())
            yield text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dataset.train_tokenizer", description=__doc__.split("\n")[0])
    parser.add_argument("--inputs", nargs="+", required=True, help=".jsonl records or UTF-8 text files")
    parser.add_argument("--output", required=True, help="the tokenizer.json to write (config files go beside it)")
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--min-frequency", type=int, default=2)
    parser.add_argument("--keys", nargs=2, default=["inputs", "targets"], metavar=("INPUTS", "TARGETS"),
                        help="the two jsonl fields to train on")
    args = parser.parse_args(argv)
    if Path(args.output).suffix != ".json":
        print(f"error: --output {args.output} must be a .json file path (e.g. out/tokenizer.json)", file=sys.stderr)
        return 2
    claim_tokenizer_files(args.output, args.inputs)
    texts = _Counted(read_training_texts(args.inputs, args.keys))
    try:
        tokenizer = train_bpe(texts, args.vocab_size, args.min_frequency)
        if not texts.non_blank:  # a tokenizer of the byte symbols only would "work" and be useless
            raise TokenizerInputError(f"{', '.join(args.inputs)}: no text to train on ({texts.count} record"
                                      " fields or files, all empty); give --inputs files that hold records")
    except (TokenizerInputError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    paths = save_tokenizer(tokenizer, args.output)
    print(f"vocab {tokenizer.get_vocab_size(with_added_tokens=True)} (asked {args.vocab_size}) -> {paths[0]}")
    if tokenizer.get_vocab_size(with_added_tokens=True) < args.vocab_size:
        print("note: the training text had fewer mergeable pairs than the vocabulary asked for", file=sys.stderr)
    print("also wrote: " + ", ".join(str(p) for p in paths[1:]))
    return 0
