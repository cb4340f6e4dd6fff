"""jsonl / parquet records -> Megatron indexed datasets: one process (``python -m dataset.preprocess``;
workers in ``chunk_encoder``, held-out records in ``heldout``), or a corpus too big for one machine cut
into shards (``shard_plan``, ``shard_run``) run on SLURM (``python -m dataset.launch``: ``launch``,
``shard_jobs``) and merged into the dataset one process would have written (``python -m
dataset.merge_shards``: ``merge_shards``, ``shard_manifests``).
"""
