"""The outputs of the commands that write model folders, and the records that prove them (``guardrails``).

Every folder below is written whole into a temporary and replaces the old one atomically, with its record
written last inside it (``guardrails.output_records``: every file, size and hash). An existing ``--out`` is
replaced only when that record says the same command wrote it and every file in it is still as written; a
folder ``save_pretrained`` wrote, the fork's checkpoints, a training run's save folder or one of ours edited
since are refused (``guardrails.output_paths.claim_folder``).

- ``hf_model_kind(command)``: a Hugging Face model folder; the record is ``conversion_manifest.json`` (what the
  conversion did: source, tag, TP/PP, dtype, shards).
- ``release_root_kind(command)``: a Megatron checkpoint root holding a ``release`` checkpoint and its tracker;
  the record is ``release_manifest.json``.

Library module, no command line.
"""
from __future__ import annotations

from guardrails.output_records import OutputKind

HF_RECORD = "conversion_manifest.json"
RELEASE_RECORD = "release_manifest.json"


def hf_model_kind(command: str) -> OutputKind:
    """A Hugging Face model folder written by ``command`` (``conversion.megatron_to_hf``, ``training.model_init``)."""
    return OutputKind("a Hugging Face model folder", command, HF_RECORD)


def release_root_kind(command: str) -> OutputKind:
    """A Megatron release checkpoint root written by ``command``."""
    return OutputKind("a Megatron release checkpoint root", command, RELEASE_RECORD)


HF_MODEL = hf_model_kind("conversion.megatron_to_hf")
