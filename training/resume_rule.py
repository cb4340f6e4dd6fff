"""When may a run resume from the checkpoints in its save folder? The one rule both engines apply.

A resume continues the data position, the optimizer and the RNG of the run that wrote the checkpoints; with
another seed, sequence length, batch size or data, the position means other samples and the run silently
trains on something else. The cluster path (``training.fork_job``: the fork's recorded ``args``) and the local
engine (``training.checkpointing``: the same names, which the engine records) both refuse such a resume::

    problems = resume_mismatches(vars(args), run_identity(cfg))   # ["seed: checkpoint 1, run 2", ...]
    check_resume(cfg.save, vars(args), run_identity(cfg))        # raises ResumeError naming every difference

Values a checkpoint does not record are not compared (older checkpoints). Library module, no command line.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from training.checkpointing import ResumeError


def run_identity(cfg: Any) -> dict[str, Any]:
    """The settings, under the fork's argument names, that a resumed run must share with its checkpoints."""
    identity: dict[str, Any] = {"seq_length": cfg.seq_length, "global_batch_size": cfg.global_batch_size,
                                "seed": cfg.seed}
    if cfg.mode == "pretrain":  # the split decides the documents of data_path
        identity["split"] = cfg.pretrain.split
        identity["data_path"] = cfg.pretrain.data_path
    else:
        identity["train_weighted_split_paths_path"] = cfg.train_split_file
    return identity


def resume_mismatches(recorded: Mapping[str, Any], expected: Mapping[str, Any]) -> list[str]:
    """``key: checkpoint X, run Y`` for every recorded value the run contradicts (unrecorded keys pass)."""
    found = []
    for key, value in expected.items():
        have = recorded.get(key)
        if isinstance(have, (list, tuple)) and len(have) == 1:  # the fork records --data-path as a list
            have = have[0]
        if have is None:
            continue
        if key.endswith("_path"):
            same = Path(str(have)).resolve() == Path(str(value)).resolve()
        else:
            same = have == value
        if not same:
            found.append(f"{key}: checkpoint {have}, run {value}")
    return found


def check_resume(save: str | Path, recorded: Mapping[str, Any], expected: Mapping[str, Any]) -> None:
    """Raise ResumeError when the checkpoints in ``save`` come from a run with other ``expected`` values."""
    problems = resume_mismatches(recorded, expected)
    if problems:
        raise ResumeError(
            f"{save}: its checkpoints come from another run ({'; '.join(problems)}). Resume with the"
            " run's own settings, or point training.save at a new folder to start afresh")
