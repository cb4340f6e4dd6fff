"""Run a sharded preprocess on SLURM: the shards as one array job, the merge as a job that waits for them.

Run::

    python -m dataset.launch submit --config RUN.yaml [--dry-run] [section.key=value ...]
    python -m dataset.launch status --config RUN.yaml [section.key=value ...]

``submit`` reads ``data:`` (inputs, tokenizer, output prefix, ``num_shards``...) and the CPU settings of
``cluster:`` (``preprocess_*``, ``merge_*``, ``partition``, ``account``, ``qos``, ``site_env``), then submits
what is still to do: every shard without a finished manifest and not queued or running already (the first
time: ``--array=0-(N-1)``), and a merge job
(``dataset.merge_shards``) with ``--dependency=afterok`` on them and on any still in flight. Run it again
after a shard failed or was cancelled: only that shard is resubmitted (finished shards are never redone),
the old merge job, which can no longer start, is cancelled, and a new one waits for the new tasks. With the
merge done it submits nothing. ``--dry-run`` prints the ``sbatch`` commands without running them. The job ids
are kept in ``PREFIX.shards/launch.json`` (with its record ``launch.json.manifest.json``: a file there that no
record of this command proves is never written over); the logs go to ``PREFIX.shards/logs/``.

``status`` (and ``submit``) print the progress: shards done, queued or running and still to submit, the input
bytes done, records and bytes per second per shard task and overall since the first submission.

The commands are argv lists built by ``dataset.preprocessing.shard_jobs`` (pure functions) and run without a shell.
Exit status 2 for a config that cannot be submitted (message says what to fix), 1 when SLURM fails.

The code: ``dataset.preprocessing.launch`` (``dataset/preprocessing/launch.py``); this module is the command's entry point only.
"""
from guardrails.command_errors import run_command
from dataset.preprocessing.launch import main

if __name__ == "__main__":
    raise SystemExit(run_command(main))
