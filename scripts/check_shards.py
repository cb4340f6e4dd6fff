"""Old name of the shard equality checker: ``python scripts/check_shards.py A B [--atol X] [--rtol Y]``.

Same as ``python -m conversion.verify shards A B ...`` (exit 0 only when the two checkpoints match).
"""
import sys

from guardrails.command_errors import run_command
from conversion.verify import main

if __name__ == "__main__":
    raise SystemExit(run_command(main, ["shards", *sys.argv[1:]]))
