"""The local engine: the fork's samples, masks, loss, optimiser and schedule in PyTorch on CPU or GPUs
(``engine``; ``python -m training.finetune``), one process or several under torchrun (``distributed``),
checkpoints in the fork's layout (``checkpointing``, ``rng_state``), the starting model
(``python -m training.model_init``), its export to Hugging Face (``python -m training.export``), LoRA,
metrics and tracking, and Hugging Face causal LMs besides GPT-BigCode (``hf_family``).
"""
