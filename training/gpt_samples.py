"""Write the fork's GPT pretraining samples (with fill-in-the-middle) of one split, and its index maps.

    python -m training.gpt_samples --data-prefix data/code_content_document --tokenizer tokenizer.json \\
        --seq-length 2048 --seed 1234 --num-samples 1000 --split 969,30,1 --split-index 0 \\
        --fim-rate 0.5 --fim-spm-rate 0.5 [--fim-split-sample '<filename>' --fragment-fim-rate 0.5] \\
        --cache-dir cache --out samples.npy

``--data-prefix`` is a raw-document dataset (``python -m dataset.preprocess --keys content --append-eod``
writes ``PREFIX_content_document``). The three index maps go into ``--cache-dir`` under the fork's names
(``{prefix}_{train|valid|test}_indexmap_{N}ns_{seq}sl_{seed}s_{doc,sample,shuffle}_idx.npy``, its dtypes),
reused only while a key of the data and parameters matches (``training.samples.gpt_index_cache``). ``--out`` gets an
int64 array ``[num_samples, seq_length + 1]``: items ``0 .. N-1`` of one dataset read in order, exactly what
the fork's ``GPTDataset`` yields (``training.samples.gpt_dataset``, ``training.samples.fim``). Use it to inspect what the
model will see, or to check a toolkit or fork upgrade against goldens; ``SAMPLES.npy.manifest.json`` beside it
is its record, and an existing ``--out`` is replaced only when that record proves it an earlier output of this
command (never the data, the tokenizer or anyone's file). Exit status 2 on bad input (the reason on stderr,
nothing written to ``--out``): a ``--tokenizer`` other than the one the data's preprocess manifest records (a
warning when there is no manifest to check against), and sizes the data or memory cannot hold: a sample longer
than the split, or rows and index maps larger than the memory available (the message gives both numbers).

The code: ``training.samples.gpt_samples`` (``training/samples/gpt_samples.py``); this module is the command's entry point only.
"""
from guardrails.command_errors import run_command
from training.samples.gpt_samples import main

if __name__ == "__main__":
    raise SystemExit(run_command(main))
