"""Stage 2: training, in sub-stages. ``samples``: the fork's packed MTF samples and GPT pretraining samples
with FIM; ``local``: the local engine (and other Hugging Face causal LMs, ``local.hf_family``);
``cluster``: the fork's argv, preflight and SLURM jobs (``finetune_starcoderbase.sh``); ``resume``: what
both engines decide about a save folder. The modules here are the commands' entry points only
(``python -m training.launch`` ...); their code lives in the subpackages.
"""
