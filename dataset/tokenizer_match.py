"""Is this the tokenizer the data (or the model) was made with? One check, wherever the two meet.

Every ``dataset.preprocess`` manifest records the sha256 of the ``tokenizer.json`` that tokenized the data, and
a checkpoint records the tokenizer file it was trained with (``args.tokenizer_file``). Another tokenizer gives
every id another meaning without any error: ``training.gpt_samples``, pretraining and fine-tuning, ``evaluation
loss``, preflight and ``conversion.megatron_to_hf`` all check it here first::

    warning = check_data_tokenizer("out/data/pairs", "tokenizer.json")   # raises TokenizerMismatchError
    check_same_tokenizer(recorded="run/tokenizer.json", given="other.json", owner="the checkpoint ckpt/")

A mismatch is an error naming both files. Data without a manifest (the fork's own preprocess) cannot be
checked: the caller prints the warning returned, which says so. A tokenizer folder means its
``tokenizer.json``. Library module, no command line.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from dataset.preprocess_manifest import MANIFEST_SUFFIX, find_manifest, read_manifest

DOCUMENT_SUFFIX = "_document"


class TokenizerMismatchError(ValueError):
    """A tokenizer other than the one the data or model was made with; the message names both."""


def tokenizer_json(path: str | os.PathLike) -> Path:
    """The ``tokenizer.json`` a tokenizer argument means (a folder: the one inside)."""
    path = Path(path)
    return path / "tokenizer.json" if path.is_dir() else path


def tokenizer_sha256(path: str | os.PathLike) -> str:
    """The sha256 of the tokenizer's bytes, as ``dataset.preprocess`` records it."""
    return hashlib.sha256(tokenizer_json(path).read_bytes()).hexdigest()


def data_manifest(prefix: str | os.PathLike) -> Path | None:
    """The preprocess manifest of a dataset prefix: a run's (``PREFIX``, ``PREFIX_valid``) or one document
    prefix (``PREFIX_content_document``: the manifest whose outputs list ``PREFIX_content_document.bin``)."""
    prefix = str(prefix)
    found = find_manifest(prefix)
    if found is not None or not prefix.endswith(DOCUMENT_SUFFIX):
        return found
    stem = prefix[: -len(DOCUMENT_SUFFIX)]
    cuts = [i for i, char in enumerate(stem) if char == "_"]  # a key may hold "_": try every cut
    for cut in reversed(cuts):
        candidate = find_manifest(stem[:cut])
        if candidate is not None and _lists_file(candidate, f"{prefix}.bin"):
            return candidate
    return None


def _lists_file(manifest: Path, name: str) -> bool:
    outputs = read_manifest(manifest).get("outputs", {})
    wanted = Path(name).name  # the recorded paths are as that run was given them (maybe another working folder)
    return any(Path(str(f)).name == wanted for split in outputs.values() if isinstance(split, dict)
               for f in split.get("files", []))


def check_data_tokenizer(prefix: str | os.PathLike, tokenizer: str | os.PathLike) -> str | None:
    """Raise TokenizerMismatchError when ``prefix``'s manifest records another tokenizer than ``tokenizer``.

    Returns None when they match, or a warning line when nothing can be checked (no manifest, or none that
    records the tokenizer's sha256).
    """
    manifest = data_manifest(prefix)
    if manifest is None:
        return (f"warning: {prefix} has no preprocess manifest ({Path(str(prefix)).name}{MANIFEST_SUFFIX} or its"
                f" run's; made by the fork's tools?), so {tokenizer} cannot be checked against the tokenizer that"
                " made it")
    recorded = read_manifest(manifest).get("tokenizer")
    sha = recorded.get("sha256") if isinstance(recorded, dict) else None
    if not isinstance(sha, str):
        return f"warning: {manifest} records no tokenizer sha256, so {tokenizer} cannot be checked against it"
    given = tokenizer_sha256(tokenizer)
    if given != sha:
        raise TokenizerMismatchError(
            f"{prefix} was tokenized with {recorded.get('path') or 'another tokenizer'} (sha256 {sha[:12]}, per"
            f" {manifest}), but the tokenizer here is {tokenizer} (sha256 {given[:12]}): every id would mean"
            f" another token; use the tokenizer the data was made with, or preprocess the data with {tokenizer}")
    return None


def check_same_tokenizer(recorded: str | os.PathLike | None, given: str | os.PathLike, owner: str) -> None:
    """Raise TokenizerMismatchError when ``owner`` (a model) records a tokenizer file, present here, other than
    ``given``; a recorded file that is gone cannot be compared and is let pass."""
    if not recorded or not tokenizer_json(recorded).is_file():
        return
    if tokenizer_sha256(recorded) != tokenizer_sha256(given):
        raise TokenizerMismatchError(
            f"{owner} was trained with the tokenizer {recorded}, but the tokenizer given is {given} (another"
            f" file: sha256 {tokenizer_sha256(given)[:12]}, not {tokenizer_sha256(recorded)[:12]}); give"
            f" {recorded}, or leave the option out to use it")
