"""The flags the fork's ``megatron/arguments.py`` defines, read from its syntax tree (the file is never run).

    python -m training.fork_flags $MEGATRON_DIR/megatron/arguments.py > flags.json

For each flag: whether it takes a value (``store_true``/``store_false`` flags do not), and its literal
``choices`` and ``nargs`` where the file gives them. Preflight checks the whole argv against the
``MEGATRON_DIR`` the job will run; ``tests/fixtures/fork_flags/mtf_arguments_flags.json`` is this output
for the fork's ``mtf`` branch.

The code: ``training.cluster.fork_flags`` (``training/cluster/fork_flags.py``); this module is the command's entry point only.
"""
from guardrails.command_errors import run_command
from training.cluster.fork_flags import main

if __name__ == "__main__":
    raise SystemExit(run_command(main))
