"""Shared set-up for the evaluation tests: a tiny random GPT-BigCode with the fork fixture tokenizer, in-process."""
from __future__ import annotations

from pathlib import Path

from tests.conftest import FORK_FIXTURES
from tests.tiny_hf_checkpoints import tiny_model

TOKENIZER = FORK_FIXTURES / "tokenizer.json"


def tiny_tokenizer():
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_file=str(TOKENIZER), eos_token="<|endoftext|>",
                                   clean_up_tokenization_spaces=False)


def tiny_hf_folder(folder: Path, seed: int = 3) -> Path:
    """A Hugging Face folder (weights, config, tokenizer) that ``AutoModelForCausalLM`` loads offline."""
    from conversion.tokenizer_files import write_tokenizer_files

    model = tiny_model(seed=seed)
    model.save_pretrained(str(folder))
    write_tokenizer_files(TOKENIZER, folder, model.config.n_positions)
    return folder
