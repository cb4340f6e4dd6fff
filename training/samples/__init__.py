"""The fork's training samples, built as it builds them: packed MTF rows for fine-tuning (index maps,
rows, batches: ``packed_dataset``, ``index_cache``, ``mtf_batch``) and GPT pretraining samples with
fill-in-the-middle (``gpt_dataset``, ``gpt_index_cache``, ``gpt_batch``, ``fim``). Both engines read them;
``python -m training.packing`` and ``python -m training.gpt_samples`` (cores ``packing``, ``gpt_samples``)
write them for the fork and say what they hold.
"""
