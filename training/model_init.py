"""The starting model of the local engine: a tiny random GPT-BigCode, or weights from a release / HF folder.

A tiny model for the demo and the tests (config from flags, vocabulary from a ``tokenizer.json``) is
written as a Megatron ``release`` checkpoint through ``conversion.megatron_checkpoint`` (and, on
request, as a Hugging Face folder)::

    python -m training.model_init --tokenizer out/demo/data/tokenizer.json --out out/demo/base_release \
        --layers 2 --hidden 64 --heads 4 --max-positions 512 [--hf-out out/demo/base_hf]

Both appear atomically, each with its record written last; an existing ``--out`` or ``--hf-out`` is replaced only
when that record proves it an earlier output of this command (``conversion.output_kinds``).
``--family llama|mistral|qwen2|starcoder2`` writes a
tiny random model of that family (``training.local.hf_family.tiny_models``) as a Hugging Face folder at ``--out``
instead (with the tokenizer files; the fork cannot load it, so there is no release)::

    python -m training.model_init --family llama --tokenizer tokenizer.json --out out/tiny_llama

``load_start_model(path)`` reads either kind of folder back: a folder with
``latest_checkpointed_iteration.txt`` is a Megatron checkpoint (a ``GPTBigCodeForCausalLM``, weights only,
through the key maps), a folder with ``config.json`` is a Hugging Face model of any family the local engine
trains (``training.local.hf_family.families``).

The code: ``training.local.model_init`` (``training/local/model_init.py``); this module is the command's entry point only.
"""
from guardrails.command_errors import run_command
from training.local.model_init import main

if __name__ == "__main__":
    raise SystemExit(run_command(main))
