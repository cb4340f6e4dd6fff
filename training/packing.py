"""Build the fork's packed-MTF index maps for a split file, and say what they hold.

    python -m training.packing --split-file data/train_data_paths.txt --seq-length 2048 --seed 1234 \\
        --num-samples 96000 --cache-dir data/cache [--group NAME] [--legacy-split-offsets] [--report FILE]

``--seq-length`` is the **model's** sequence length (``--seq-length`` of finetune_mtf); rows hold
``seq_length + 1`` tokens because finetune_mtf hands ``args.seq_length + 1`` to the dataset. The fork's
fixtures were built with ``--seq-length 256`` (rows of 257). ``--num-samples`` is the group's total;
for a blended group each dataset gets ``ceil(n * w * 1.005)`` (the fork's rule). Without ``--group`` every
group of the file is built (a valid file may hold several), each for ``--num-samples``.

The maps land in ``--cache-dir`` under the fork's names
(``{prefix-basename}_{group}_indexmap_{N}ns_{S}s_decoder_packed_{batch,shuffle}_idx.npy``), so they can
be copied next to the data for the fork, plus a ``..._key.json`` that keys them by content (they are
rebuilt when the data or a parameter changes). Data prefixes in the split file are resolved relative to
the split file's folder unless absolute. Over-long pairs that the fork skips are counted and printed.
``--legacy-split-offsets`` reproduces the fork's range bug (``0.95:1`` reads the *first* 5%); without
it the documents of the range are read, which only differs for ranges that do not start at 0.
Exit status: 0 on success, 1 on bad input (with the reason).

The code: ``training.samples.packing`` (``training/samples/packing.py``); this module is the command's entry point only.
"""
from guardrails.command_errors import run_command
from training.samples.packing import main

if __name__ == "__main__":
    raise SystemExit(run_command(main))
