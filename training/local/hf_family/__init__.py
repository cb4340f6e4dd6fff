"""The local engine's support for Hugging Face causal LMs besides GPT-BigCode (Llama, Mistral, Qwen2, StarCoder2).

``families``: which ``model_type`` values are trained and the few facts the engine needs of each (through the
``transformers`` interface); ``attention``: the packed rows' mask as each family's attention layers read it
(sliding windows); ``checkpoint``: the ``iter_XXXXXXX`` folders of a run the fork cannot load (safetensors, or
torch's distributed checkpoint under FSDP2) and their exact resume; ``tiny_models``: tiny random models of each
family (tests, demo, benchmarks); ``preflight_rules``: what ``training.launch preflight`` checks of such a run.
"""
