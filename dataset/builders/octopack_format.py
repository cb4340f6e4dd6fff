"""OctoPack-style ``{"inputs", "targets"}`` records: the one module that knows how the example builders frame a pair.

Both example builders (``dataset.commits_to_jsonl`` and ``dataset.docstring_pairs``) write their records
through this module, so the special-token framing and the jsonl bytes are defined once::

    commit:    inputs  = ["<filename>" NAME] "<commit_before>" OLD "<commit_msg>"
               targets = SUBJECT "<commit_after>" NEW "<|endoftext|>"
    docstring: inputs  = ["<filename>" NAME ".py"] "<commit_before>" SIGNATURE_AND_DOCSTRING
               targets = BODY "<|endoftext|>"

The bracketed ``<filename>`` part is present with a seeded coin (probability 0.5 by default), as in
OctoPack's ``prepare_bigcode``; the commit framing (subject at the start of the targets, after
``<commit_msg>``) is OctoPack's ``to_jsonl.py``. ``<|endoftext|>`` is literal text: the tokenizer maps it to
id 0, so preprocessing must not append another EOD.

``dataset.code_to_jsonl`` writes its raw-code ``{"content"}`` lines and manifest through the same functions.

jsonl bytes: ``json_line(record)``, the compact UTF-8 JSON line that ``dataset.formats.parquet_records.record_line``
makes of a parquet row (``orjson``: no spaces after ``:`` and ``,``), keys in the order ``inputs``, ``targets``.
Why that form and not ``json.dumps``'s ``": "``: ``dataset.preprocess --valid-fraction`` hashes each line's bytes
as written, so only lines written exactly as a parquet row reads hold out the same records from the same
documents given either way (``tests/test_builder_jsonl_lines.py``). Builds before this rule wrote ``json.dumps``
lines: rebuilding such a file changes its bytes, so a ``--valid-fraction`` split of the rebuilt file differs from
the old one's.

Files appear under their final name only when complete, then the builder's manifest ``NAME.manifest.json`` (named
after the whole output name: ``x.txt`` and ``x.jsonl`` never share one), which is also the record that proves the
output is the builder's own (``guardrails.output_records``): an existing ``--output`` is replaced only when that
record, written by the same builder, lists it as it is now.
"""
from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Mapping, Protocol

from dataset.formats.parquet_records import record_line
from guardrails.file_set import atomic_file_set
from guardrails.output_paths import claim_file
from guardrails.output_records import OutputKind, sidecar_record

# StarCoder's special tokens in id order 0..18 (tests/fixtures/fork/tokenizer.json, ``added_tokens``).
STARCODER_SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>", "<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>", "<filename>",
    "<gh_stars>", "<issue_start>", "<issue_comment>", "<issue_closed>", "<jupyter_start>",
    "<jupyter_text>", "<jupyter_code>", "<jupyter_output>", "<empty_output>", "<commit_before>",
    "<commit_msg>", "<commit_after>", "<reponame>",
)
END_OF_TEXT = "<|endoftext|>"
FILENAME = "<filename>"
COMMIT_BEFORE = "<commit_before>"
COMMIT_MSG = "<commit_msg>"
COMMIT_AFTER = "<commit_after>"


def json_line(values: Mapping[str, str]) -> str:
    """One jsonl line (with its newline), byte for byte the line a parquet row of the same values stands for."""
    return record_line(dict(values)).decode("utf-8") + "\n"


@dataclass(frozen=True)
class PairRecord:
    """One jsonl line: the prompt (no loss) and the completion (loss)."""

    inputs: str
    targets: str

    def to_json_line(self) -> str:
        return json_line({"inputs": self.inputs, "targets": self.targets})


def contains_special_token(text: str) -> bool:
    """True when ``text`` holds a special token literally; it would tokenize to a control id and break the framing."""
    return "<" in text and any(token in text for token in STARCODER_SPECIAL_TOKENS)


def commit_record(filename: str | None, old: str, subject: str, new: str) -> PairRecord:
    """A commit pair; ``filename`` (a base name) is None when the coin said to leave it out."""
    head = f"{FILENAME}{filename}" if filename is not None else ""
    return PairRecord(
        inputs=f"{head}{COMMIT_BEFORE}{old}{COMMIT_MSG}",
        targets=f"{subject}{COMMIT_AFTER}{new}{END_OF_TEXT}",
    )


def docstring_record(function_name: str | None, prompt: str, body: str) -> PairRecord:
    """A docstring -> body pair; ``function_name`` (the fixture uses ``NAME.py``) is None when left out."""
    head = f"{FILENAME}{function_name}.py" if function_name is not None else ""
    return PairRecord(inputs=f"{head}{COMMIT_BEFORE}{prompt}", targets=f"{body}{END_OF_TEXT}")


class JsonLineRecord(Protocol):
    """A record that knows its jsonl line (``PairRecord``, ``dataset.builders.code_to_jsonl.CodeRecord``)."""

    def to_json_line(self) -> str: ...


def builder_kind(builder: str) -> OutputKind:
    """The jsonl output of the builder command ``builder`` (``dataset.commits_to_jsonl``, ...)."""
    return OutputKind("an example builder's jsonl", builder)


def claim_builder_output(output: str | os.PathLike, builder: str, inputs: Iterable[Any] = ()) -> None:
    """Refuse, before any work, an ``--output`` that is not missing or provably ``builder``'s own output."""
    claim_file(output, builder_kind(builder), "--output", inputs=inputs)


def write_records(handle: BinaryIO, records: Iterable[JsonLineRecord]) -> tuple[int, str]:
    """Stream ``records`` as jsonl into ``handle``; returns (number of lines, sha256 of what was written)."""
    digest = hashlib.sha256()
    count = 0
    for record in records:
        data = record.to_json_line().encode("utf-8")
        handle.write(data)
        digest.update(data)
        count += 1
    return count, digest.hexdigest()


def manifest_path_for(output: str | os.PathLike) -> Path:
    """``out/pairs.jsonl`` -> ``out/pairs.jsonl.manifest.json`` (beside the output it describes and proves)."""
    return sidecar_record(output)


def finish_build(output: str | os.PathLike, records: Iterable[JsonLineRecord], facts: Mapping[str, Any],
                 skipped: Mapping[str, int], started: float, source: str) -> int:
    """The builders' common end: write ``records`` and the manifest (their record), put in place together, then
    print what was done; returns 0.

    The manifest is ``facts`` (builder, source, settings, ...) followed by the counts every builder reports;
    ``source`` says where the records came from in the summary line (``"from 3 files"``); ``started`` is a
    ``time.monotonic()`` reading.
    """
    claim_builder_output(output, str(facts["builder"]))
    with atomic_file_set(output, builder_kind(str(facts["builder"]))) as files:
        with open(files.temporary(output), "wb") as handle:  # streamed: a corpus is never held in memory
            count, sha256 = write_records(handle, records)
        files.facts.update({**facts, "records": count, "skipped": dict(sorted(skipped.items())),
                            "output": str(output), "sha256": sha256, "seconds": round(time.monotonic() - started, 3)})
    print(f"{count} records {source} -> {output}")
    print("skipped: " + (", ".join(f"{k}={v}" for k, v in sorted(skipped.items())) or "none"))
    print(f"manifest: {manifest_path_for(output)}")
    return 0
