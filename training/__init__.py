"""Stage 2: the fork's packed MTF samples (index maps, rows, batches), the fork's GPT pretraining samples with FIM
(``gpt_samples``, ``gpt_dataset``, ``fim``, ``gpt_batch``, ``pretrain_data``), the local training engine, and the
cluster path: the fork's ``finetune_mtf.py`` / ``pretrain_gpt.py`` argv (``megatron_argv``, ``pretrain_argv``,
``fork_job``), preflight, and SLURM jobs (``launch``, ``slurm_submit``, ``finetune_starcoderbase.sh``)."""
