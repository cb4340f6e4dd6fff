"""Train a byte-level BPE tokenizer with StarCoder's special-token layout (ids 0..18).

    python -m dataset.train_tokenizer --inputs out/pairs.jsonl [more.jsonl notes.txt ...] \\
        --output out/tokenizer.json [--vocab-size 8192] [--min-frequency 2] [--keys inputs targets]

Writes ``tokenizer.json`` (the file the fork's ``--tokenizer-file`` and ``dataset.preprocess`` read) and,
beside it, ``tokenizer_config.json`` + ``special_tokens_map.json`` so that
``AutoTokenizer.from_pretrained(folder)`` works offline, then ``tokenizer.json.manifest.json``, the record of all
three (``guardrails.output_records``): an existing file among them is replaced only when that record, written by
this command, lists it as it is now (a model folder's own ``tokenizer_config.json`` is never touched). Layout, as the fork fixture's tokenizer:
byte-level pre-tokenizer (no prefix space), byte-level post-processor and decoder, BPE without unk,
and the 19 StarCoder special tokens at ids 0..18 in StarCoder's order (``<|endoftext|>`` = 0,
``<fim_pad>`` = 4, ``<commit_before>`` = 15 ...), so special tokens written as text encode to one id.
bos = eos = unk = ``<|endoftext|>`` (as StarCoder); pad = ``<fim_pad>`` (the id the fork pads with).

Inputs: ``.jsonl`` (or ``.jsonl.gz``) files contribute the two fields named by ``--keys`` of every record,
read and validated as ``dataset.preprocess`` reads them; any other file is read whole as UTF-8 text.
Special tokens are cut out of the training text (they are added tokens, not words to merge). Training is
deterministic: the same inputs give the same file, byte for byte.

The code: ``dataset.builders.train_tokenizer`` (``dataset/builders/train_tokenizer.py``); this module is the command's entry point only.
"""
from guardrails.command_errors import run_command
from dataset.builders.train_tokenizer import main

if __name__ == "__main__":
    raise SystemExit(run_command(main))
