"""Stage 1: data, in sub-stages. ``formats``: record files, tokenizer, indexed datasets and their manifests;
``preprocessing``: jsonl -> Megatron indexed datasets (one process, or shards on SLURM, merged);
``splitting``: weighted split files, plans, and the fork's index maps; ``builders``: example data (pairs,
raw code) and a tokenizer. The modules here are the commands' entry points only (``python -m
dataset.preprocess`` ...); their code lives in the subpackages.
"""
