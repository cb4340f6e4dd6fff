"""Tokenizer files for a converted Hugging Face folder, and the bos/eos ids the config takes from them.

StarCoder-style tokenizers use ``<|endoftext|>`` (id 0) as bos and eos; GPT-2's 50256 would be wrong for
every GPT-BigCode model, so ids always come from the tokenizer. ``--tokenizer`` may be a ``tokenizer.json``
file (a ``tokenizer_config.json`` for ``PreTrainedTokenizerFast`` is written next to it) or a Hugging Face
tokenizer folder (its files are copied).

Library module, no command line.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

STARCODER_EOS = "<|endoftext|>"
STARCODER_DEFAULT_ID = 0
TOKENIZER_FOLDER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt",
    "added_tokens.json",
)


class TokenizerFilesError(ValueError):
    """A tokenizer path that cannot provide the special token ids or files."""


def _tokenizer_json(tokenizer: Path) -> Path:
    path = tokenizer / "tokenizer.json" if tokenizer.is_dir() else tokenizer
    if not path.is_file():
        raise TokenizerFilesError(f"{path}: no tokenizer.json here; pass --tokenizer path/to/tokenizer.json")
    return path


def special_token_ids(tokenizer: str | Path | None) -> tuple[int, int]:
    """(bos, eos) ids: ``<|endoftext|>`` of the tokenizer, or StarCoder's 0 when no tokenizer is given."""
    if tokenizer is None:
        return STARCODER_DEFAULT_ID, STARCODER_DEFAULT_ID
    from tokenizers import Tokenizer

    path = _tokenizer_json(Path(tokenizer))
    try:
        token_id = Tokenizer.from_file(str(path)).token_to_id(STARCODER_EOS)
    except Exception as exc:  # tokenizers raises a bare Exception on malformed JSON
        raise TokenizerFilesError(f"{path}: not a readable tokenizers file ({exc})") from exc
    if token_id is None:
        raise TokenizerFilesError(f"{path}: has no {STARCODER_EOS!r} token; GPT-BigCode needs it as bos/eos")
    return token_id, token_id


def write_tokenizer_files(tokenizer: str | Path, dest: Path, model_max_length: int) -> list[str]:
    """Copy the tokenizer into ``dest`` so ``AutoTokenizer.from_pretrained(dest)`` works offline."""
    tokenizer = Path(tokenizer)
    if tokenizer.is_dir():
        copied = [name for name in TOKENIZER_FOLDER_FILES if (tokenizer / name).is_file()]
        for name in copied:
            shutil.copyfile(tokenizer / name, dest / name)
        if "tokenizer_config.json" in copied:
            return copied
    else:
        shutil.copyfile(_tokenizer_json(tokenizer), dest / "tokenizer.json")
        copied = ["tokenizer.json"]
    special = {"bos_token": STARCODER_EOS, "eos_token": STARCODER_EOS, "unk_token": STARCODER_EOS}
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": model_max_length,
        "clean_up_tokenization_spaces": False,
        **special,
    }
    (dest / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    (dest / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n", encoding="utf-8")
    return copied + ["tokenizer_config.json", "special_tokens_map.json"]
