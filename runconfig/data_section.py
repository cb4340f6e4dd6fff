"""The ``data:`` section of the run config (read by ``dataset.preprocess``)."""
from __future__ import annotations

from dataclasses import dataclass

from runconfig.value_rules import check_values


@dataclass(frozen=True)
class DataConfig:
    """jsonl -> Megatron indexed datasets. Paths are relative to the working directory.

    ``keys`` are the JSON fields read as inputs and targets (``outputs`` is accepted when ``targets`` is
    missing); the files are named ``PREFIX_inputs_document`` / ``PREFIX_targets_document`` whatever the keys.
    A single key (``[content]``) reads raw documents for pretraining into ``PREFIX_content_document``.
    With ``valid_fraction`` or ``valid_count`` the held-out records go to ``PREFIX_valid_...`` only.
    """

    inputs: tuple[str, ...] = ()
    tokenizer: str = ""
    output_prefix: str = ""
    keys: tuple[str, ...] = ("inputs", "targets")
    workers: int = 0  # tokenizer worker processes; 0 = one per core
    append_eod: bool = False
    skip_invalid: bool = False
    valid_fraction: float = 0.0
    valid_count: int = 0
    valid_seed: int = 1234
    max_line_bytes: int = 64 * 1024 * 1024  # longer lines are bad input (never held in memory whole)
    num_shards: int = 1  # >1: one process per shard (dataset.shard_plan), then dataset.merge_shards

    def __post_init__(self) -> None:
        check_values(self)  # each value's range: runconfig.value_rules
        if len(self.keys) not in (1, 2):
            raise ValueError(f"keys must name two fields (inputs, targets) or one (raw documents, e.g. content), "
                             f"got {list(self.keys)}")
        if self.valid_fraction and self.valid_count:
            raise ValueError("give valid_fraction or valid_count, not both")
