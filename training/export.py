"""A Hugging Face folder of a training run's latest (or named) checkpoint, for any model family.

    python -m training.export --save SAVE --out OUT [--iteration N] [--tokenizer TOKENIZER] \
        [--dtype auto|float32|bfloat16|float16] [--max-shard-size 2GB]

A GPT-BigCode run (the fork's layout, ``mp_rank_00/``) is converted exactly as ``python -m
conversion.megatron_to_hf --megatron SAVE --tag N`` converts it. A run of another family
(``training.local.hf_family.checkpoint``: safetensors, or the shards of torch's distributed checkpoint under FSDP2)
is gathered in this one process (the model's weights only, never the optimizer state) and written the same
way: ``model-0000i-of-0000n.safetensors`` + index, ``config.json``, ``generation_config.json`` (bos/eos from the
config), the tokenizer files and ``conversion_manifest.json``. The tokenizer is ``--tokenizer``, else the
tokenizer files of the folder the run started from (``training.load``, e.g. the Llama-2 folder), else the
run's ``training.tokenizer``. ``OUT`` appears atomically and replaces only a folder that its record
(``conversion_manifest.json``, ``conversion.output_kinds``) proves an earlier output of the same command (for a
GPT-BigCode run: ``conversion.megatron_to_hf``'s); the result loads with ``AutoModelForCausalLM`` /
``AutoTokenizer``.

The code: ``training.local.export`` (``training/local/export.py``); this module is the command's entry point only.
"""
from guardrails.command_errors import run_command
from training.local.export import main

if __name__ == "__main__":
    raise SystemExit(run_command(main))
