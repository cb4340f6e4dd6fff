"""The one place that says which single values of the run config can be meant: every numeric key's range.

A negative ``lr`` trains by gradient ascent, ``eval_iters: 0`` skips validation without a word, ``adam_beta1:
1.5`` reaches torch's own error after files were written, a seed above 2**32 - 1 stops numpy half-way, and NaN
compares false with every bound. The loader (``runconfig.loader.build_dataclass``) checks each key against this
table as it reads it, so the error names the key's ``FILE:LINE:`` before any command writes anything; each
section's ``__post_init__`` applies the same table (``check_values``) to a section built in code. Rules that
tie two keys together (``min_lr`` below ``lr``, warmup below decay) stay in the sections.

Every float must be finite, every integer must fit in 64 bits (numpy and torch hold them there), and every
numeric field of every section has an entry below (``tests/test_config_values.py`` checks both)::

    value_problem("TrainingConfig", "lr", -1.0)   # -> "must be > 0 and <= 1, got -1.0"

Command-line flags of commands without a run config (``training.model_init --layers``, ``evaluation --limit``)
use the same ``Bound`` through ``check_flags``. Library module, no command line.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields, is_dataclass
from typing import Any, Mapping

INT64_MAX = 2**63 - 1
SEED_MAX = 2**32 - 1  # numpy.random.RandomState refuses larger seeds (and negative ones)
# the devices the local engine and evaluation run on (auto: a GPU when one is visible, else the CPU)
DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
DEVICE_FORMS = "auto, cpu, cuda or cuda:N"


@dataclass(frozen=True)
class Bound:
    """``low <= value <= high`` (``<`` where open); None = no bound on that side."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    note: str = ""  # why, shown with the error

    def problem(self, value: float) -> str | None:
        too_low = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        too_high = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        if not (too_low or too_high):
            return None
        return f"must be {self.describe()}, got {value!r}" + (f" ({self.note})" if self.note else "")

    def describe(self) -> str:
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {_number(self.low)}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {_number(self.high)}")
        return " and ".join(parts)


POSITIVE = Bound(low=1)
NON_NEGATIVE = Bound(low=0)
FRACTION = Bound(low=0, high=1)  # a probability
BETA = Bound(low=0, high=1, high_open=True, note="Adam's betas lie in [0, 1)")
DROPOUT = Bound(low=0, high=1, high_open=True, note="null = the start checkpoint's recorded value")
SEED = Bound(low=0, high=SEED_MAX, note="numpy's RandomState takes seeds 0 .. 2**32 - 1")

# section dataclass name -> field -> its bound; a field missing here is a bug (tests/test_config_values.py)
BOUNDS: dict[str, dict[str, Bound]] = {
    "TrainingConfig": {
        "pad_id": Bound(low=-1, note="-1 = <fim_pad> of the tokenizer, else a token id"),
        "seq_length": POSITIVE,
        "micro_batch_size": POSITIVE,
        "global_batch_size": POSITIVE,
        "train_iters": NON_NEGATIVE,
        "lr": Bound(low=0, high=1, low_open=True, note="0 or less never learns or climbs the loss; above 1 is a typo"),
        "min_lr": NON_NEGATIVE,
        "lr_warmup_samples": NON_NEGATIVE,
        "lr_decay_samples": NON_NEGATIVE,
        "weight_decay": Bound(low=0, high=1, note="AdamW shrinks the weights by lr x weight_decay every step"),
        "adam_beta1": BETA,
        "adam_beta2": BETA,
        "adam_eps": Bound(low=0, high=1, low_open=True, note="it keeps Adam's division away from zero; a large one"
                          " stops the updates"),
        "clip_grad": Bound(low=0, note="0 = no clipping"),
        "seed": SEED,
        "save_interval": POSITIVE,
        "eval_interval": POSITIVE,
        "eval_iters": Bound(low=1, note="0 or less would skip validation without a word"),
        "log_interval": POSITIVE,
        "peak_flops": Bound(low=0, note="0 = look the device up"),
        "cpu_threads": Bound(low=0, note="0 = torch's default"),
        "tensor_model_parallel_size": POSITIVE,
        "pipeline_model_parallel_size": POSITIVE,
        "hidden_dropout": DROPOUT,
        "attention_dropout": DROPOUT,
    },
    "LoraConfig": {
        "rank": POSITIVE,
        "alpha": POSITIVE,
        "dropout": Bound(low=0, high=1, high_open=True),
    },
    "PretrainConfig": {
        "fim_rate": FRACTION,
        "fim_spm_rate": FRACTION,
        "fragment_fim_rate": FRACTION,
    },
    "DataConfig": {
        "workers": Bound(low=0, note="0 = one per core"),
        "valid_fraction": Bound(low=0, high=1, high_open=True),
        "valid_count": NON_NEGATIVE,
        "valid_seed": SEED,
        "max_line_bytes": POSITIVE,
        "num_shards": POSITIVE,
    },
    "ClusterConfig": {
        "nodes": POSITIVE,
        "gpus_per_node": POSITIVE,
        "cpus_per_task": Bound(low=0, note="0 = the site's default"),
        "rdzv_port": Bound(low=1, high=65535, note="a TCP port"),
        "preprocess_cpus_per_task": POSITIVE,
        "preprocess_max_parallel": Bound(low=0, note="0 = no limit"),
    },
    "ConversionConfig": {
        "tp": POSITIVE,
        "pp": POSITIVE,
        "make_vocab_size_divisible_by": POSITIVE,
    },
}

# string keys whose values are a closed set written as a pattern (checked at load like the numbers)
PATTERNS: dict[str, dict[str, tuple[re.Pattern[str], str]]] = {
    "TrainingConfig": {"device": (DEVICE, DEVICE_FORMS)},
}


def value_problem(owner: str, name: str, value: Any) -> str | None:
    """Why ``value`` cannot be meant for key ``name`` of section class ``owner``, or None when it can."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be a finite number, got {value!r}"
    if isinstance(value, int) and abs(value) > INT64_MAX:
        return f"must fit in 64 bits (at most {INT64_MAX}), got {value!r}"
    if isinstance(value, (int, float)):
        bound = BOUNDS.get(owner, {}).get(name)
        return bound.problem(value) if bound is not None else None
    if isinstance(value, str) and name in PATTERNS.get(owner, {}):
        pattern, allowed = PATTERNS[owner][name]
        return None if pattern.match(value) else f"must be one of {allowed}, got {value!r}"
    return None


def check_values(section: Any) -> None:
    """Raise ValueError for the first field of the section dataclass ``section`` that cannot be meant."""
    assert is_dataclass(section)
    owner = type(section).__name__
    for item in fields(section):
        problem = value_problem(owner, item.name, getattr(section, item.name))
        if problem:
            raise ValueError(f"{item.name} {problem}")


def check_flags(args: Any, bounds: Mapping[str, Bound | re.Pattern[str]]) -> None:
    """Raise ValueError (``--layers must be >= 1, got 0``) for the first parsed flag outside its bound.

    ``bounds`` maps an argparse destination (``max_new_tokens``) to its ``Bound``, or to a pattern for a
    string (``DEVICE``); a flag left at None (not given, no default) is not checked.
    """
    for dest, bound in bounds.items():
        value = getattr(args, dest, None)
        if value is None or isinstance(value, bool):
            continue
        flag = "--" + dest.replace("_", "-")
        if isinstance(bound, re.Pattern):
            if not bound.match(str(value)):
                allowed = DEVICE_FORMS if bound is DEVICE else f"a value matching {bound.pattern}"
                raise ValueError(f"{flag} {value!r}: write {allowed}")
        elif isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{flag} must be a finite number, got {value!r}")
        elif bound.problem(value):
            raise ValueError(f"{flag} {bound.problem(value)}")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(value)
