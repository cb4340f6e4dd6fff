"""Whether a save folder's checkpoints are this run's: the values a resume must not change, one rule for all callers.

A resume continues a run's data position and model, so the save folder's recorded args must agree with the run
config on the model shape, the sequence length, the global batch size (the data position is counted in its
samples), the seed (the order of the samples) and the training data: the train split file's path and what it
says (the fork records the parsed groups, so a split file rewritten in place is caught too), or, for
pretraining, ``--split`` and ``--data-path``. A key the checkpoint does not record passes (older checkpoints,
the local engine's, which records no split paths).

    problems = identity_mismatches(recorded_args, training_cfg, shape)     # ["seed: checkpoint 1, run 2", ...]
    check_resume_identity(recorded_args, training_cfg, shape)             # raises ResumeError naming them

The cluster launcher (``training.fork_job``) refuses a resume with it; the local engine can call the same.
Library module, no command line.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from dataset.split_files import SplitFileError, parse_split_file, resolve_prefix
from runconfig.model_presets import ModelShape
from training.checkpointing import ResumeError

# the fork's names for the parsed train split file (megatron/arguments.py: parse_data_paths_path)
_FORK_SPLIT_KEYS = ("train_weighted_split_names", "train_weighted_split_weights", "train_weighted_split_splits",
                    "train_weighted_split_paths")


def identity_values(cfg: Any, shape: ModelShape | None = None) -> dict[str, Any]:
    """The recorded arg names a resume must match, with the run's values (``cfg``: a ``TrainingConfig``)."""
    values: dict[str, Any] = {}
    if shape is not None:
        values.update(num_layers=shape.num_layers, hidden_size=shape.hidden_size,
                      num_attention_heads=shape.num_attention_heads,
                      max_position_embeddings=shape.max_position_embeddings)
    values.update(seq_length=cfg.seq_length, global_batch_size=cfg.global_batch_size, seed=cfg.seed)
    if cfg.mode == "pretrain":  # the fork records --data-path as a list; the split decides the documents
        values.update(split=cfg.pretrain.split, data_path=[cfg.pretrain.data_path])
    else:
        values["train_weighted_split_paths_path"] = cfg.train_split_file
    return values


def _same_path(have: Any, value: Any) -> bool:
    return Path(str(have)).resolve() == Path(str(value)).resolve()


def _same(key: str, have: Any, value: Any) -> bool:
    if key.endswith("_path"):
        return _same_path(have, value)
    if key == "data_path":  # the fork's list may hold weights before the prefix; the prefixes must agree
        return isinstance(have, (list, tuple)) and len(have) == len(value) and \
            all(_same_path(h, v) for h, v in zip(have, value))
    return have == value


def _split_file_contents(recorded: Mapping[str, Any], split_file: str) -> str | None:
    """``None``, or how the train split file now differs from the groups the checkpoint's run parsed from it."""
    if any(recorded.get(key) is None for key in _FORK_SPLIT_KEYS) or not split_file:
        return None
    try:
        groups = parse_split_file(split_file, "train")
    except (SplitFileError, OSError):
        return None  # preflight reports an unreadable split file on its own
    now = [(g.name, [(d.weight, d.start, d.end, resolve_prefix(d.prefix, split_file)) for d in g.datasets])
           for g in groups]
    try:
        then = [(name, [(float(w), *(float(x) for x in r.split(":")), resolve_prefix(p, split_file))
                        for w, r, p in zip(weights, ranges, paths)])
                for name, weights, ranges, paths in zip(*(recorded[k] for k in _FORK_SPLIT_KEYS))]
    except (TypeError, ValueError):
        return None
    if now == then:
        return None
    return (f"train split file {split_file}: the checkpoint's run read {_describe(then)}, it now says"
            f" {_describe(now)}")


def _describe(groups: list[tuple[str, list[tuple[float, float, float, Path]]]]) -> str:
    return "; ".join(f"{name}: " + ", ".join(f"{w:g} {s:g}:{e:g} {p}" for w, s, e, p in datasets)
                     for name, datasets in groups)


def identity_mismatches(recorded: Mapping[str, Any], cfg: Any, shape: ModelShape | None = None) -> list[str]:
    """``key: checkpoint X, run Y`` for every recorded value the run contradicts (unrecorded keys pass)."""
    found = []
    for key, value in identity_values(cfg, shape).items():
        have = recorded.get(key)
        if have is not None and not _same(key, have, value):
            found.append(f"{key}: checkpoint {have}, run {value}")
    if cfg.mode != "pretrain":
        changed = _split_file_contents(recorded, cfg.train_split_file)
        if changed:
            found.append(changed)
    return found


def check_resume_identity(recorded: Mapping[str, Any], cfg: Any, shape: ModelShape | None = None) -> None:
    """Raise ``ResumeError`` when ``cfg.save``'s checkpoints (their recorded args) come from another run."""
    problems = identity_mismatches(recorded, cfg, shape)
    if problems:
        raise ResumeError(
            f"{cfg.save}: its checkpoints come from another run ({'; '.join(problems)}). Resume with the"
            " run's own settings, or point training.save at a new folder to start afresh")
