"""What an existing output of each conversion command looks like, so that only such a folder is ever replaced.

``guardrails.output_paths.claim_folder`` applies the rule (a missing or empty folder, or one of the same kind);
the kinds are defined here, beside the formats they know:

- ``hf_model_folder_problem``: a Hugging Face model folder as a conversion writes it: a model's ``config.json``
  (a JSON object with ``model_type``), weights in a layout the reader knows (``model.safetensors``, sharded
  safetensors + index, ``pytorch_model.bin``, sharded ``.bin`` + index) and nothing else but the files a
  conversion or ``save_pretrained`` writes (tokenizer files, ``generation_config.json``, the manifest).
- ``release_root_problem``: a Megatron checkpoint root holding a ``release`` checkpoint only (what
  ``hf_to_megatron`` and ``training.model_init`` write): the tracker says ``release`` and nothing else is there
  but ``release/``. A root whose tracker names an iteration is a training run's save folder: refused, so that
  its tracker is never repointed away from the trained weights.

Library module, no command line.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from conversion.checkpoint_format import TRACKER_NAME, CheckpointFormatError, read_tracker, tag_dir_name
from conversion.hf_checkpoint_reader import BIN_INDEX, BIN_SINGLE, SAFETENSORS_INDEX, SAFETENSORS_SINGLE
from conversion.tokenizer_files import TOKENIZER_FOLDER_FILES
from guardrails.output_paths import output_entries

HF_WEIGHT_FILES = (SAFETENSORS_SINGLE, SAFETENSORS_INDEX, BIN_SINGLE, BIN_INDEX)
_HF_SHARD = re.compile(r"^(model-\d{5}-of-\d{5}\.safetensors|pytorch_model-\d{5}-of-\d{5}\.bin)$")
HF_SIDE_FILES = ("config.json", "generation_config.json", "conversion_manifest.json", *TOKENIZER_FOLDER_FILES)


def hf_model_folder_problem(folder: Path) -> str | None:
    """None when ``folder`` is a Hugging Face model folder a conversion may replace, else why it is not."""
    config = folder / "config.json"
    try:
        model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError):
        model_type = None
    if not model_type:
        return "exists and has no model config.json (a JSON object with model_type)"
    names = {entry.name for entry in output_entries(folder)}
    if not names & set(HF_WEIGHT_FILES):
        return f"has a config.json but no model weights ({', '.join(HF_WEIGHT_FILES)})"
    others = sorted(n for n in names if n not in HF_WEIGHT_FILES and n not in HF_SIDE_FILES and not _HF_SHARD.match(n))
    if others:
        return f"holds files a conversion does not write ({', '.join(others[:5])})"
    return None


def release_root_problem(root: Path) -> str | None:
    """None when ``root`` holds only a ``release`` checkpoint (tracker + ``release/``), else why it is not."""
    names = {entry.name for entry in output_entries(root)}  # a killed run's .release.tmp-PID does not count
    if TRACKER_NAME in names:
        try:
            tag = read_tracker(root)
        except CheckpointFormatError as exc:
            return f"has an unreadable tracker ({exc})"
        if tag != "release":
            return (f"is a training run's save folder ({TRACKER_NAME} names iteration {tag}); writing a release"
                    " checkpoint there would repoint the tracker away from the trained weights")
    others = sorted(names - {TRACKER_NAME, tag_dir_name("release")})
    if others:
        return f"holds more than a release checkpoint ({', '.join(others[:5])})"
    if TRACKER_NAME not in names:
        return f"has a release/ folder but no {TRACKER_NAME}"
    return None
