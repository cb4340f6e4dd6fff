"""Raw source files -> ``{"content": ...}`` jsonl, the input of continued pretraining with FIM.

    python -m dataset.code_to_jsonl --source my/project --output data/code.jsonl \\
        [--revision HEAD] [--extensions .py .pyi] [--max-file-bytes 200000] [--min-file-bytes 1] \\
        [--filename-prefix] [--exclude-dir NAME ...] [--max-records N] [--seed 1234 | --no-shuffle]

``--source`` is a local folder (walked depth first in sorted name order; symlinks not followed) or, with
``--revision``, a local git repository read at that revision (``git ls-tree`` + ``git cat-file``, through
``dataset.builders.git_runner``: tracked files only, nothing from the working tree). Each file that passes the filters
becomes one record ``{"content": TEXT}``, a compact UTF-8 JSON line, byte for byte the line a parquet row
``content=TEXT`` stands for in ``dataset.preprocess`` (``dataset.builders.octopack_format.json_line``: so
``--valid-fraction`` holds out the same files from this jsonl as from the same documents in parquet); with
``--filename-prefix`` TEXT is ``"<filename>" PATH "\\n" SOURCE`` (PATH relative
to the source, ``/``-separated), the StarCoder metadata form that ``--fim-split-sample <filename>`` splits on.

Skipped and counted, never silently: files with another extension (``other_extension``), in an excluded
folder (``excluded_dir``, counted per folder), symlinks, submodules, FIFOs, sockets and devices
(``not_regular_file``), with ``--filename-prefix`` names that are not UTF-8 (``undecodable_file_name``), over
``--max-file-bytes`` (``oversized_file``) or under ``--min-file-bytes`` / whitespace only (``empty_file``),
binary (a NUL in the first 8000 bytes, as git decides), not UTF-8 (``undecodable_utf8``), holding a special
token literally (``special_token_in_text``: ``<|endoftext|>`` in a file would end its document early), exact
duplicates of an earlier file (``duplicate``), and beyond ``--max-records`` (``not_selected``).

Order is deterministic: files in path order, duplicates dropped keeping the first, then shuffled with
``random.Random(seed)`` (so the fork's ``--split 969,30,1`` holds out a sample of files, not the last folder)
unless ``--no-shuffle``. The output and a manifest beside it (``dataset.builders.octopack_format``) appear atomically.
Then: ``python -m dataset.preprocess --input data/code.jsonl --keys content --append-eod ...``.

The code: ``dataset.builders.code_to_jsonl`` (``dataset/builders/code_to_jsonl.py``); this module is the command's entry point only.
"""
from guardrails.command_errors import run_command
from dataset.builders.code_to_jsonl import main

if __name__ == "__main__":
    raise SystemExit(run_command(main))
