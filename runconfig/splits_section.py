"""The ``splits:`` section of the run config (read by ``dataset.splits``).

``train`` and ``valid`` list ``"WEIGHT START:END PREFIX"`` entries (one group each, named ``train`` and
``valid``); they are written verbatim to ``out_dir/train_data_paths.txt`` and
``out_dir/valid_data_paths.txt``, and relative prefixes are resolved against ``out_dir`` (the split
files' folder), as ``training.packing`` resolves them.

The planner's run parameters (``seq_length``, ``train_iters``, ``global_batch_size``, ``eval_interval``,
``eval_iters``, ``seed``, ``legacy_split_offsets``) are not repeated here: ``dataset.splits plan --config``
reads them from the ``training:`` section, the one place they live, so the plan always describes the run
that trains.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SplitsConfig:
    """Weighted split files. Each dataset entry is ``"WEIGHT START:END PREFIX"``."""

    train: tuple[str, ...] = ()
    valid: tuple[str, ...] = ()
    out_dir: str = ""

    def __post_init__(self) -> None:
        for role in ("train", "valid"):
            for i, entry in enumerate(getattr(self, role)):
                if len(entry.split()) != 3:
                    raise ValueError(
                        f"{role}[{i}] = {entry!r}: expected 'WEIGHT START:END PREFIX' (three fields),"
                        " e.g. '1.0 0:0.95 data/prefix'"
                    )
