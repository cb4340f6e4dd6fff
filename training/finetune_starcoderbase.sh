#!/usr/bin/env bash
# The fine-tuning job that `python -m training.launch submit` queues with sbatch (it prints the full command):
#   sbatch [--nodes N --time ... from the cluster: section] finetune_starcoderbase.sh JOB_DIR SITE_ENV GPUS_PER_NODE RDZV_PORT
# One task per node; each runs torchrun with c10d rendezvous on the allocation's first node (where this
# script runs); each worker becomes the process the argv file names (the fork's finetune_mtf.py or the local
# engine). No logic here: Python decides everything, values are passed as arguments and never re-parsed.
set -euo pipefail
JOB_DIR="$1"
SITE_ENV="$2"
GPUS_PER_NODE="$3"
RDZV_PORT="$4"
# site settings: MEGATRON_DIR, modules, the virtualenv, NCCL variables (see training/site.env.example)
source "$SITE_ENV"
ARGV_FILE="$JOB_DIR/argv-$SLURM_JOB_ID.json"
# start or resume is decided once per job, from the save folder, before any worker starts
python -m training.launch argv --config "$JOB_DIR/run_config.yaml" --write "$ARGV_FILE"
HEAD_NODE="$(hostname)"
srun --nodes="$SLURM_JOB_NUM_NODES" --ntasks-per-node=1 --kill-on-bad-exit=1 \
    python -m torch.distributed.run --nnodes="$SLURM_JOB_NUM_NODES" --nproc-per-node="$GPUS_PER_NODE" \
    --rdzv-backend=c10d --rdzv-endpoint="$HEAD_NODE:$RDZV_PORT" --rdzv-id="$SLURM_JOB_ID" \
    -m training.launch exec "$ARGV_FILE"
