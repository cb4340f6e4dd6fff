"""Stage 2: the fork's packed MTF samples (index maps, rows, batches), the local training engine, and the cluster
path: the fork's ``finetune_mtf.py`` argv (``megatron_argv``, ``fork_job``), preflight, and SLURM jobs
(``launch``, ``slurm_submit``, ``finetune_starcoderbase.sh``)."""
