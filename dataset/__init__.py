"""Stage 1: jsonl records -> Megatron indexed datasets (pairs, or raw documents with one key) -> weighted split files
and plans (``splits``; ``--split`` ranges for pretraining), plus example data builders (pairs, raw code)."""
