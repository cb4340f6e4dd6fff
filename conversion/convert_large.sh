#!/usr/bin/env bash
# Convert a Megatron checkpoint to Hugging Face (streaming), then check the logits of both agree.
# usage: conversion/convert_large.sh MEGATRON_ROOT HF_OUT [megatron_to_hf options, e.g. --tokenizer tokenizer.json --dtype bfloat16]
# The check encodes its prompts with the tokenizer copied into HF_OUT: pass --tokenizer unless the
# checkpoint's args record a tokenizer_file that exists here (else the check stops with exit status 2).
# Python: $PYTHON if set (e.g. PYTHON=.venv/bin/python), else the `python` on PATH (an activated .venv).
set -euo pipefail
if [ "$#" -lt 2 ]; then echo "usage: conversion/convert_large.sh MEGATRON_ROOT HF_OUT [megatron_to_hf options]" >&2; exit 2; fi
"${PYTHON:-python}" -m conversion.megatron_to_hf --megatron "$1" --out "$2" "${@:3}"
"${PYTHON:-python}" -m conversion.verify logits --megatron "$1" --hf "$2"
