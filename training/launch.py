"""The cluster path: build the fork's argv, check a run before it is queued, submit it to SLURM.

    python -m training.launch argv --config RUN.yaml [section.key=value ...] [--json] [--write FILE]
    python -m training.launch preflight --config RUN.yaml [section.key=value ...]
    python -m training.launch submit --config RUN.yaml [section.key=value ...] [--dry-run]
    python -m training.launch status --config RUN.yaml [section.key=value ...]   # jobs, progress, next step
    python -m training.launch adopt --config RUN.yaml    # once: a save folder from before records existed
    python -m training.launch exec FILE      # inside the job, under torchrun: run the argv FILE holds

``argv`` prints one JSON object and nothing else on stdout with ``--json``
(``{"script", "nodes", "gpus_per_node", "argv"}``), else one shell-quoted command; the start/resume
decision goes to stderr. It needs no cluster and no checkpoint (preflight checks those). ``--write``
also saves the JSON atomically (the job script does this once per job, so every node runs the same argv),
with its record ``FILE.manifest.json``; an existing FILE is replaced only when that record proves it an earlier
``argv --write`` (never the run config or anyone's file).
``adopt`` makes a save folder that holds a run's checkpoints but no record (the fork's, written before
``submit`` recorded its folders, or an earlier version of this toolkit's) the run's own, on the user's word: it
writes ``run_manifest.json`` when the folder holds only what a run writes. Every command that writes into a save
folder refuses one without that record (``guardrails.output_paths``) and names this command.
Exit status 2 on a bad config or failed preflight, with every problem listed.

The code: ``training.cluster.launch`` (``training/cluster/launch.py``); this module is the command's entry point only.
"""
from guardrails.command_errors import run_command
from training.cluster.launch import main

if __name__ == "__main__":
    raise SystemExit(run_command(main))
