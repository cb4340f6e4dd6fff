#!/usr/bin/env bash
# jsonl -> Megatron indexed datasets (PREFIX_{inputs,targets}_document.{bin,idx} + PREFIX.preprocess.manifest.json).
# Python: $PYTHON if set (e.g. PYTHON=.venv/bin/python), else the `python` on PATH (an activated .venv).
# Usage: dataset/preprocess.sh --input data.jsonl --tokenizer tokenizer.json --output-prefix out/data/pairs \
#          [--valid-fraction 0.05] [--skip-invalid] [--append-eod] [--workers N] [--config run.yaml data.key=value]
set -euo pipefail
"${PYTHON:-python}" -m dataset.preprocess "$@"
