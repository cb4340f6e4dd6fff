"""OctoPack-format commit pairs from a local git repository's history.

    python -m dataset.commits_to_jsonl --repo path/to/repo --output out/commits.jsonl \\
        [--revision HEAD] [--walk first-parent|all] [--seed 1234] [--max-records 5000] \\
        [--max-file-bytes 100000] [--filename-probability 0.5] [--single-file-commits]

One record per file *modified* in a non-merge commit (format in ``dataset.builders.octopack_format``)::

    {"inputs": "<filename>NAME<commit_before>OLD<commit_msg>", "targets": "SUBJECT<commit_after>NEW<|endoftext|>"}

NAME is the file's base name (present with probability ``--filename-probability``, as in OctoPack),
SUBJECT the first line of the commit message. What is kept and why:

- the walk is ``--first-parent`` by default (the mainline's own changes; ``--walk all`` adds side-branch
  commits), see ``dataset.builders.git_history``; merges are skipped (their diff restates the merged work);
- only modified (status ``M``) regular files: an added file has no "before", a deleted one no "after",
  and a rename or copy pairs two different names, so those are skipped and counted;
- files over ``--max-file-bytes`` (either side), binary files (a NUL byte in the first 8000 bytes, git's
  own test), text that is not UTF-8, text that contains a special token literally, and mode-only
  changes are skipped and counted;
- ``--single-file-commits`` keeps only commits that modify exactly one file (what CommitPackFT did: the
  subject then describes exactly that change).

Selection is seeded: the candidate changes are shuffled with ``random.Random(seed)`` and examined in that
order until ``--max-records`` are kept (0 = all); the same RNG draws the filename coin. The output is
written atomically, and ``NAME.manifest.json`` beside it records the settings, the commit it read, the
counts per skip reason (``not_examined`` = candidates left once enough records were kept) and the sha256.

The code: ``dataset.builders.commits_to_jsonl`` (``dataset/builders/commits_to_jsonl.py``); this module is the command's entry point only.
"""
from guardrails.command_errors import run_command
from dataset.builders.commits_to_jsonl import main

if __name__ == "__main__":
    raise SystemExit(run_command(main))
