"""Values that cannot be meant are refused when the config loads, naming FILE:LINE and the key (issue 16 item 13).

Property tests over every numeric key of every section (nested ``lora``/``pretrain`` included): a negative, a
zero, NaN and a huge value each either load as written or stop with ``FILE:LINE:`` and the key's name, never a
traceback; NaN and integers beyond 64 bits never load. The issue's own list (negative ``lr``, ``eval_iters:
0``, ``adam_beta1: 1.5``, ``device: banana``...) is checked value by value, commands stop before writing, and
the numeric flags of commands without a run config (``model_init --layers 0``, ``evaluation --limit -3``) too.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from evaluation.commands import main as evaluation_main
from runconfig.loader import ConfigError
from runconfig.run_config import SECTIONS, load_run_config
from runconfig.value_rules import BOUNDS
from training.local.finetune import main as finetune_main
from training.local.model_init import main as model_init_main

TOKENIZER = Path(__file__).parent / "fixtures" / "fork" / "tokenizer.json"


def _numeric_keys(cls: type, owners: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], type, str]]:
    """(key path, int or float, owning dataclass name) of every numeric field, nested sections included."""
    found = []
    hints = typing.get_type_hints(cls)
    for item in dataclasses.fields(cls):
        hint = hints[item.name]
        optional = [a for a in typing.get_args(hint) if a is not type(None)]
        if typing.get_args(hint) and len(optional) == 1 and type(None) in typing.get_args(hint):
            hint = optional[0]  # ``float | None``: null means "take it from elsewhere"; a number is checked
        if dataclasses.is_dataclass(hint):
            found += _numeric_keys(hint, (*owners, item.name))
        elif hint in (int, float):
            found.append(((*owners, item.name), hint, cls.__name__))
    return found


NUMERIC_KEYS = [(section, *key) for section, cls in SECTIONS.items() for key in _numeric_keys(cls)]
HUGE_INT = 10**30  # beyond int64: numpy and torch cannot hold it
VALUES = {int: ["-1", "0", ".nan", str(HUGE_INT)], float: ["-0.5", "0.0", ".nan", "1.0e+300"]}


def _write(tmp_path: Path, section: str, path: tuple[str, ...], raw: str) -> tuple[Path, int]:
    """A config holding ``raw`` at ``section.path``; returns the file and the line of the innermost key."""
    lines = ["# a run config", f"{section}:"]
    for depth, name in enumerate(path):
        lines.append("  " * (depth + 1) + f"{name}:" + (f" {raw}" if depth == len(path) - 1 else ""))
    config = tmp_path / "run.yaml"
    config.write_text("\n".join(lines) + "\n")
    return config, len(lines)


def test_every_numeric_key_has_a_rule_and_every_rule_a_key():
    keys = {(owner, path[-1]) for _, path, _, owner in NUMERIC_KEYS}
    assert len(keys) > 40  # the walk found the sections' keys (not an empty loop)
    ruled = {(owner, name) for owner, table in BOUNDS.items() for name in table}
    assert keys - ruled == set(), "numeric keys without a range in runconfig.value_rules.BOUNDS"
    assert ruled - keys == set(), "ranges in runconfig.value_rules.BOUNDS for keys no section has"


@pytest.mark.parametrize("section,path,kind,owner", NUMERIC_KEYS,
                         ids=[".".join((section, *path)) for section, path, _, _ in NUMERIC_KEYS])
def test_negative_zero_nan_and_huge_load_as_written_or_name_file_line_and_key(tmp_path, section, path, kind, owner):
    dotted = ".".join((section, *path))
    for raw in VALUES[kind]:
        config, line = _write(tmp_path, section, path, raw)
        written = yaml.safe_load(raw)
        try:
            cfg = load_run_config(config)
        except ConfigError as exc:
            message = str(exc)
            assert message.startswith((f"{config}:{line}: {dotted}: ", f"{config}:2: {section}: ")), (raw, message)
            assert path[-1] in message, (raw, message)
            continue
        # loaded: the value is exactly what the file says, and something a program can use
        loaded = getattr(cfg, section)
        for name in path:
            loaded = getattr(loaded, name)
        assert loaded == written and type(loaded) is kind, (raw, loaded)  # 0 loads as 0.0 for a float key
        assert not (isinstance(written, float) and math.isnan(written)), f"{dotted}: NaN was accepted"
        assert kind is float or abs(written) < 2**63, f"{dotted}: {raw} does not fit in 64 bits but was accepted"
        if "seed" in path[-1]:
            np.random.RandomState(loaded)  # numpy takes 0 .. 2**32 - 1 only


# the issue's list, expectations written from the issue (and Adam's / numpy's definitions), not from the table
REFUSED = [
    ("lr", "-0.0002"), ("lr", "0"), ("lr", "2e5"), ("min_lr", "-1e-5"), ("eval_iters", "0"), ("eval_iters", "-2"),
    ("clip_grad", "-1.0"), ("weight_decay", "-0.1"), ("adam_eps", "0"), ("adam_eps", "-1e-8"),
    ("weight_decay", "5"), ("adam_beta1", "1.5"), ("adam_beta1", "-0.1"), ("adam_beta2", "1.0"), ("lr", ".inf"), ("seed", "-1"),
    ("seed", "4294967296"), ("device", "banana"), ("device", "gpu"), ("device", "cuda:x"), ("device", "'cuda:'"),
]
ACCEPTED = [("clip_grad", "0.0"), ("adam_beta1", "0.0"), ("weight_decay", "0.0"), ("device", "cpu"),
            ("device", "cuda:1"), ("device", "auto"), ("seed", "4294967295"), ("lr", "1")]


@pytest.mark.parametrize("key,raw", REFUSED)
def test_values_the_issue_lists_are_refused_at_their_line(tmp_path, key, raw):
    config, line = _write(tmp_path, "training", (key,), raw)
    with pytest.raises(ConfigError) as refused:
        load_run_config(config)
    assert str(refused.value).startswith(f"{config}:{line}: training.{key}: "), str(refused.value)


@pytest.mark.parametrize("key,raw", ACCEPTED)
def test_values_that_can_be_meant_still_load(tmp_path, key, raw):
    config, _ = _write(tmp_path, "training", (key,), raw)
    expected = raw if key == "device" else int(raw) if key == "seed" else float(raw)
    assert getattr(load_run_config(config).training, key) == expected


def test_a_nested_key_is_named_at_its_own_line(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("training:\n  lora:\n    enabled: true\n    alpha: 16\n    rank: 0\n")
    with pytest.raises(ConfigError, match=rf"^{config}:5: training\.lora\.rank: must be >= 1, got 0"):
        load_run_config(config)
    with pytest.raises(ConfigError, match=r"training\.lora\.rank: must be >= 1, got -2"):
        load_run_config(config, ["training.lora.rank=-2"])  # an override is checked the same way
    assert load_run_config(config, ["training.lora.rank=4"]).training.lora.rank == 4


@pytest.mark.parametrize("override", ["training.lr=-1", "training.eval_iters=0", "training.device=banana",
                                      "training.adam_beta1=1.5"])
def test_finetune_stops_before_writing_anything(tmp_path, capsys, override):
    save = tmp_path / "save"
    config = tmp_path / "run.yaml"
    config.write_text(f"training:\n  save: {save}\n  load: {tmp_path / 'nothing'}\n")
    assert finetune_main(["--config", str(config), override]) == 2
    err = capsys.readouterr().err
    assert override.split("=")[0] in err and len(err.strip().splitlines()) == 1, err
    assert not save.exists()


@pytest.mark.parametrize("flag,value", [("--layers", "0"), ("--hidden", "0"), ("--heads", "-1"),
                                        ("--max-positions", "0"), ("--dropout", "1.5")])
def test_model_init_refuses_sizes_that_cannot_build_a_model(tmp_path, capsys, flag, value):
    out = tmp_path / "release"
    assert model_init_main(["--tokenizer", str(TOKENIZER), "--out", str(out), flag, value]) == 2
    err = capsys.readouterr().err
    assert f"{flag} must be" in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


@pytest.mark.parametrize("args", [["humaneval", "--canonical", "--limit", "-3"],
                                  ["humaneval", "--canonical", "--limit", "0"],
                                  ["humaneval", "--canonical", "--timeout", "0"],
                                  ["humaneval", "--canonical", "--workers", "0"],
                                  ["humaneval", "--canonical", "--top-p", "nan"],
                                  ["infill", "--model", "m", "--device", "banana"],
                                  ["loss", "--base", "a", "--tuned", "b", "--valid-prefix", "p", "--max-pairs", "-1"]])
def test_evaluation_refuses_flags_that_cannot_be_meant(tmp_path, capsys, args):
    out = tmp_path / "out.json"
    assert evaluation_main([*args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    flag = next(a for a in args[::-1] if a.startswith("--"))
    assert flag in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a GPU")
def test_evaluation_on_cuda_without_a_gpu_is_one_line(tmp_path, capsys):
    out = tmp_path / "loss.json"
    code = evaluation_main(["loss", "--base", str(tmp_path), "--tuned", str(tmp_path), "--valid-prefix", "p",
                            "--device", "cuda", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "no CUDA device" in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


FORK = Path(__file__).parent / "fixtures" / "fork"
FIM = Path(__file__).parent / "fixtures" / "fork_fim"


@pytest.mark.parametrize("command", ["packing", "gpt_samples", "splits plan"])
@pytest.mark.parametrize("seed", ["-1", str(2**32)])
def test_a_seed_numpy_cannot_take_is_one_line_before_anything_is_built(tmp_path, capsys, command, seed):
    from dataset.splitting.splits import main as splits_main
    from training.samples.gpt_samples import main as samples_main
    from training.samples.packing import main as packing_main

    sample = FORK / "sample"
    (tmp_path / "train.txt").write_text(f'"train: 1.0 0:1 {sample}"\n')
    runs = {
        "packing": lambda: packing_main(["--split-file", str(tmp_path / "train.txt"), "--seq-length", "64",
                                         "--num-samples", "4", "--seed", seed, "--cache-dir", str(tmp_path / "c")]),
        "gpt_samples": lambda: samples_main(["--data-prefix", str(FIM / "code_content_document"), "--tokenizer",
                                             str(FIM / "tokenizer.json"), "--seq-length", "64", "--num-samples", "2",
                                             "--seed", seed, "--cache-dir", str(tmp_path / "c"),
                                             "--out", str(tmp_path / "s.npy")]),
        "splits plan": lambda: splits_main(["plan", "--train", str(tmp_path / "train.txt"), "--seq-length", "64",
                                            "--train-iters", "2", "--global-batch-size", "2", "--seed", seed,
                                            "--json", str(tmp_path / "plan.json")]),
    }
    try:
        code = runs[command]()
    except SystemExit as exc:  # argparse's parser.error
        code = exc.code
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert code == 2, code  # a user error, for dataset.splits plan too (issue 16 item 19)
    assert len(errors) == 1 and "2**32 - 1" in errors[0], errors  # was numpy's traceback
    assert not (tmp_path / "c").exists() and not (tmp_path / "s.npy").exists() and not (tmp_path / "plan.json").exists()
