"""Merge the shards of a sharded preprocess run into the dataset one process would have written.

Run::

    python -m dataset.merge_shards --output-prefix out/data/pairs --num-shards N [--remove-shards]

after ``python -m dataset.preprocess ... --output-prefix out/data/pairs --num-shards N --shard-index I`` ran
for every ``I`` (by hand or as a SLURM array: ``dataset.launch``). It checks that all ``N`` shards are
finished and belong to one run (``dataset.preprocessing.shard_manifests``: same tokenizer, keys, settings and inputs, and
together every input byte once), then writes ``PREFIX_{inputs,targets}_document.{bin,idx}`` (and the
``PREFIX_valid_...`` pair with a hold-out) byte-identical to a single-process run with the same flags,
whatever ``N``: the shards hold whole records in input order and the hold-out is decided per record
(``dataset.preprocessing.heldout``). The files are joined by ``dataset.formats.indexed_concat``: streaming, flat memory, close to
copy speed. Outputs appear as in ``dataset.preprocess``: every ``.bin``, then every ``.idx``, then the merged
manifest (counts, skips by reason, the shards' input hashes) where a single run puts its manifest.
The merged manifest is the record of every file written (``guardrails.output_records``): files already at the
prefix are replaced only when the old manifest proves them, as for ``dataset.preprocess``. ``--remove-shards``
deletes, once the merge is in place, the files each shard's manifest proves (and the manifest); a shard folder
that still holds anything else (a user's file) is kept, and said. Exit status 2 for shards that cannot be merged
(the message names the shard), 1 for a system error; nothing is half-written either way.

The code: ``dataset.preprocessing.merge_shards`` (``dataset/preprocessing/merge_shards.py``); this module is the command's entry point only.
"""
from guardrails.command_errors import run_command
from dataset.preprocessing.merge_shards import main

if __name__ == "__main__":
    raise SystemExit(run_command(main))
