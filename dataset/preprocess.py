"""jsonl -> Megatron indexed datasets (``PREFIX_{inputs,targets}_document.{bin,idx}``), byte-identical to the fork.

Run::

    python -m dataset.preprocess --input data.jsonl [more.jsonl.gz data.parquet ...] --tokenizer tokenizer.json \\
        --output-prefix out/data/pairs [--keys inputs targets | --keys content] [--workers N] [--append-eod] \\
        [--skip-invalid] [--valid-fraction F | --valid-count N] [--valid-seed S] \\
        [--config run.yaml] [data.key=value ...] [--num-shards N --shard-index I]

Parquet files (``pyarrow``; the StarCoder data and The Stack: one folder per language, ``--input ROOT
--languages go,rust``) are read a row group at a time as the same JSON lines (``dataset.formats.parquet_records``,
``dataset.formats.input_files``): the same keys, skips, held-out rule and shards (cut at row-group boundaries), and
the same bytes out as the records given as jsonl.

Each jsonl record (one line) becomes one document in the inputs file and one in the targets file, tokenized
as the fork's ``tools/preprocess_data.py`` does (see ``dataset.formats.text_tokenizer``). Unlike the fork, a record
whose inputs or targets is empty is never written to one file only: it stops the run (default) or is
skipped whole (``--skip-invalid``), as is any other bad line (see ``dataset.formats.jsonl_records``). Held-out
records (``--valid-fraction``/``--valid-count``, seeded; see ``dataset.preprocessing.heldout``) go to ``PREFIX_valid_...``
and nowhere else. ``--num-shards N --shard-index I`` (or ``data.num_shards`` and a SLURM array task) makes one
shard of a run too big for one machine (``dataset.preprocessing.shard_plan``); ``dataset.merge_shards`` joins them.
With one key (``--keys content --append-eod``: raw code for pretraining) each record is one document of
``PREFIX_content_document``, as the fork's ``--json-keys content`` writes it.

Speed: the main process reads the files in chunks of whole lines; ``--workers`` processes (default one per
core) each validate and tokenize a chunk with the Rust batch encoder (``dataset.preprocessing.chunk_encoder``) and send the
ids back; the main process writes them in input order. Only a few chunks per worker are in flight, so memory
does not grow with the input. Outputs appear only when complete (``dataset.formats.preprocess_outputs``), then
``PREFIX.preprocess.manifest.json`` (``dataset.formats.preprocess_manifest``). The fork's index maps of a replaced
prefix are removed with its old files (``dataset.formats.index_map_files``; the summary lists them). CLI flags override
the ``data:`` section of ``--config``.

The code: ``dataset.preprocessing.preprocess`` (``dataset/preprocessing/preprocess.py``); this module is the command's entry point only.
"""
from guardrails.command_errors import run_command
from dataset.preprocessing.preprocess import main

if __name__ == "__main__":
    raise SystemExit(run_command(main))
