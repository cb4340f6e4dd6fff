"""The fork on a SLURM cluster: its argv (``megatron_argv`` for ``finetune_mtf.py``, ``pretrain_argv`` for
``pretrain_gpt.py``), its flags read from its source (``python -m training.fork_flags``), what one job
runs (``fork_job``) and finds at run time (``fork_runtime``, ``python -m training.fork_probe``), preflight,
submit and status (``python -m training.launch``: ``launch``, ``preflight``, ``slurm_submit``,
``run_status``). The job script itself is ``training/finetune_starcoderbase.sh``.
"""
