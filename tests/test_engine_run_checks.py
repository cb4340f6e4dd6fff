"""The local engine checks what the cluster path checks, with the same rules (issue 16 item 11).

- Validation reading training documents: the engine prints the warnings ``dataset.splits plan`` prints for the
  same split files (one function, ``dataset.split_overlap``).
- A resume with another seed, sequence length or data files is refused, with the very message the cluster path
  gives for the same save folder (one rule, ``training.run_identity``).
"""
from __future__ import annotations

import shutil

import pytest

from dataset.splits import main as splits_main
from runconfig import load_section
from runconfig.run_config import load_run_config
from runconfig.training_section import TrainingConfig
from tests.conftest import FORK_FIXTURES
from tests.local_engine_fixtures import run_overrides, tiny_release
from training.checkpointing import ResumeError
from training.engine import train
from training.fork_job import plan_job


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two iterations saved, validation 0.9:1 of the training prefix read 0:1: it overlaps."""
    tmp = tmp_path_factory.mktemp("overlap")
    train_file, valid_file = tmp / "train_all.txt", tmp / "valid_last_tenth.txt"  # run_overrides writes its own
    train_file.write_text(f'"train: 1.0 0:1 {FORK_FIXTURES / "sample"}"\n')
    valid_file.write_text(f'"valid: 1.0 0.9:1 {FORK_FIXTURES / "sample"}"\n')
    overrides = run_overrides(tmp, tiny_release(tmp), tmp / "run", train_iters=2, save_interval=2, eval_interval=2,
                              train_split_file=train_file, valid_split_file=valid_file)
    messages: list[str] = []
    train(load_section(None, "training", TrainingConfig, overrides), say=messages.append)
    return {"tmp": tmp, "overrides": overrides, "messages": messages, "train": train_file, "valid": valid_file}


def test_validation_reading_training_documents_is_said_as_the_plan_says_it(trained, capsys):
    assert splits_main(["plan", "--train", str(trained["train"]), "--valid", str(trained["valid"]), "--seq-length",
                        "256", "--train-iters", "2", "--global-batch-size", "4", "--eval-interval", "2",
                        "--eval-iters", "1", "--json", str(trained["tmp"] / "plan.json")]) == 0
    plan = [line.removeprefix("WARNING: ") for line in capsys.readouterr().out.splitlines()
            if line.startswith(("WARNING: OVERLAP", "WARNING: !!! FORK RANGE BUG"))]
    assert any(line.startswith("OVERLAP: valid/valid documents [360, 400)") for line in plan), plan
    engine = [m.removeprefix("warning: ") for m in trained["messages"] if m.startswith("warning: ")]
    assert [line for line in engine if line in plan] == plan, (engine, plan)


@pytest.mark.parametrize("change,recorded", [
    ({"seed": 99}, "seed: checkpoint 1234, run 99"),
    ({"seq_length": 128}, "seq_length: checkpoint 256, run 128"),
    ({"train_split_file": "copy"}, "train_weighted_split_paths_path: checkpoint"),
])
def test_a_resume_of_another_seed_length_or_data_is_refused_by_both_engines_alike(trained, change, recorded):
    if change.get("train_split_file") == "copy":  # the same lines in another file: other data, as far as we know
        copy = trained["tmp"] / "other_train_all.txt"
        shutil.copy(trained["train"], copy)
        change = {"train_split_file": copy}
    overrides = trained["overrides"] + [f"training.{k}={v}" for k, v in change.items()]
    before = sorted(p.name for p in (trained["tmp"] / "run").iterdir())
    with pytest.raises(ResumeError) as local:
        train(load_section(None, "training", TrainingConfig, overrides), say=lambda _: None)
    assert recorded in str(local.value)
    assert sorted(p.name for p in (trained["tmp"] / "run").iterdir()) == before  # nothing written
    # the cluster path, pointed at the same save folder, refuses with the same words
    run = load_run_config(None, [*overrides, "training.engine=megatron"])
    with pytest.raises(ResumeError) as cluster:
        plan_job(run, None, [])
    assert str(cluster.value) == str(local.value)


def test_the_runs_own_settings_still_resume(trained):
    overrides = [o for o in trained["overrides"] if not o.startswith("training.train_iters=")]
    messages: list[str] = []
    result = train(load_section(None, "training", TrainingConfig, [*overrides, "training.train_iters=3"]),
                   say=messages.append)
    assert result.iteration == 3 and any(m.startswith("restored: optimizer state") for m in messages)
