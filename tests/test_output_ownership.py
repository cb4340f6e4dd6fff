"""Issue 16, data loss: each path that lost a user's data, now refused or kept (the rule: ``guardrails.output_paths``).

Items 1, 2, 5, 7 and the look-alikes of 9 are also in ``tests/test_attacks_lookalikes.py`` (every flag of every
command); here are the cases that need a command run first: a lock held by a running fine-tune (3), a hold-out
made separately (4), builder manifests sharing a stem (6), an interrupted ``humaneval --model`` (8), a user's file
in a shard folder (9).
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from guardrails.command_errors import run_command
from guardrails.output_paths import forget_claims
from tests.attack_world import TOKENIZER, tree
from tests.conftest import FORK_FIXTURES, REPO_ROOT
from tests.local_engine_fixtures import run_overrides, subprocess_env


def _last_line(capsys) -> str:
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_two_fine_tunes_on_one_save_folder_the_second_is_refused(attack_world, tmp_path, capsys):
    """Item 3: both "succeeded", one silently replacing the other's checkpoints; now the second is refused."""
    from training.local.finetune import main

    save = tmp_path / "run"
    argv = run_overrides(attack_world, attack_world / "base", save, train_iters=100000, save_interval=100000,
                         eval_interval=100000)
    first = subprocess.Popen([sys.executable, "-m", "training.finetune", *argv], cwd=REPO_ROOT,
                             env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not (save / "metrics.jsonl").exists():
            assert first.poll() is None, first.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the first run did not start"
            time.sleep(0.2)
        before = {name: data for name, data in tree(save).items() if not name.startswith(("tensorboard", "metrics"))}
        second = run_overrides(attack_world, attack_world / "base", save, train_iters=1, save_interval=1,
                               eval_interval=1, lr_warmup_samples=0)  # short: without the lock it would just run
        assert run_command(main, second) == 2
        assert f"training.save {save}: another run (process {first.pid}) is writing into it" in _last_line(capsys)
        assert {k: v for k, v in tree(save).items() if k in before} == before
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=120)


def _preprocess(prefix: Path, *extra: str) -> int:
    from dataset.preprocessing.preprocess import main

    forget_claims()
    return run_command(main, ["--input", str(FORK_FIXTURES / "sample.jsonl"), "--tokenizer", str(TOKENIZER),
                              "--output-prefix", str(prefix), "--workers", "1", *extra])


def test_a_hold_out_made_separately_is_never_deleted_nor_replaced(tmp_path, capsys):
    """Item 4: a run on PREFIX without a hold-out deleted a PREFIX_valid dataset that another run had made."""
    data = tmp_path / "data"
    assert _preprocess(data / "pairs_valid") == 0  # made on its own, with its own manifest
    separate = tree(data)
    assert _preprocess(data / "pairs") == 0
    assert {k: v for k, v in tree(data).items() if k in separate} == separate
    assert _preprocess(data / "pairs", "--valid-count", "5") == 2  # it would write PREFIX_valid_*: refused
    last = _last_line(capsys)
    assert f"{data / 'pairs_valid_inputs_document.bin'}: exists and pairs_valid_inputs_document.bin is not" in last
    assert f"({data / 'pairs'}_* is unchanged)" in last
    assert {k: v for k, v in tree(data).items() if k in separate} == separate


def test_merge_keeps_a_hold_out_made_separately_and_a_users_file_in_a_shard_folder(tmp_path, capsys):
    """Items 4 and 9: merge_shards committed like preprocess (the same deletion), and --remove-shards deleted the
    shard folders whole, a user's file inside them too."""
    from dataset.preprocessing.merge_shards import main as merge

    data = tmp_path / "data"
    assert _preprocess(data / "pairs_valid") == 0
    separate = tree(data)
    for index in (0, 1):
        assert _preprocess(data / "pairs", "--num-shards", "2", "--shard-index", str(index)) == 0
    note = data / "pairs.shards" / "00001-of-00002" / "my_notes.txt"
    note.write_text("mine")
    forget_claims()
    assert run_command(merge, ["--output-prefix", str(data / "pairs"), "--num-shards", "2", "--remove-shards"]) == 0
    assert {k: v for k, v in tree(data).items() if k in separate} == separate
    assert note.read_text() == "mine" and sorted(p.name for p in note.parent.iterdir()) == ["my_notes.txt"]
    assert not (data / "pairs.shards" / "00000-of-00002").exists()  # only what the shard's manifest proves went
    assert f"kept {note.parent}: it holds files its shard's manifest does not list" in capsys.readouterr().err


def test_builder_manifests_are_named_by_the_whole_output_name(attack_world, tmp_path):
    """Item 6: X.txt and X.jsonl shared X.manifest.json; a hand-written X.jsonl beside a builder's X.manifest.json
    was "provably" a builder output and was replaced."""
    from dataset.builders import code_to_jsonl, docstring_pairs

    src = ["--source", str(attack_world / "src")]
    assert run_command(docstring_pairs.main, ["--roots", str(attack_world / "src"), "--output",
                                              str(tmp_path / "x.jsonl")]) == 0
    jsonl_manifest = (tmp_path / "x.jsonl.manifest.json").read_bytes()
    forget_claims()
    assert run_command(code_to_jsonl.main, [*src, "--output", str(tmp_path / "x.txt")]) == 0
    assert (tmp_path / "x.jsonl.manifest.json").read_bytes() == jsonl_manifest  # not overwritten by the 2nd build
    assert json.loads((tmp_path / "x.txt.manifest.json").read_text())["builder"] == "dataset.code_to_jsonl"
    hand = tmp_path / "hand"
    hand.mkdir()
    (hand / "y.jsonl").write_text('{"inputs": "mine", "targets": "mine"}\n')
    (hand / "y.manifest.json").write_text('{"builder": "dataset.docstring_pairs"}\n')  # what old versions wrote
    forget_claims()
    assert run_command(docstring_pairs.main, ["--roots", str(attack_world / "src"), "--output",
                                              str(hand / "y.jsonl")]) == 2
    assert (hand / "y.jsonl").read_text() == '{"inputs": "mine", "targets": "mine"}\n'


def test_an_interrupted_humaneval_model_run_leaves_the_earlier_outputs_together(attack_world, tmp_path, capsys,
                                                                             monkeypatch):
    """Item 8: samples.jsonl was replaced before the scoring, so Ctrl-C left new samples beside old results while
    the message said the folder was intact. Now the folder is replaced whole, or not at all."""
    from evaluation import commands, humaneval_generate

    def scored(samples, problems, sandbox, ks, workers, progress):
        return {"pass@1": 0.0, "problems": 1, "problems_total": 164, "samples": len(samples), "k_not_reported": [],
                "subset": "subset: 1 of 164 problems", "settings": {}, "results": []}

    monkeypatch.setattr(humaneval_generate, "score_samples", scored)
    out = tmp_path / "he"
    argv = ["humaneval", "--model", str(attack_world / "hf"), "--out", str(out), "--limit", "1", "--n", "1",
            "--k", "1", "--max-new-tokens", "2", "--no-progress"]
    assert run_command(commands.main, argv) == 0
    before = tree(out)
    assert sorted(before) == ["manifest.json", "results.json", "samples.jsonl", "settings.json"]

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(humaneval_generate, "score_samples", interrupted)
    forget_claims()
    capsys.readouterr()
    assert run_command(commands.main, [*argv[:-1], "--temperature", "0.8", "--no-progress"]) == 130
    assert _last_line(capsys) == f"commands: interrupted; {out} is unchanged"
    assert tree(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["he"]


@pytest.mark.parametrize("name", ["train.txt.old-1999", "results.old-2023"])
def test_files_named_like_leftovers_stay_beside_an_output_that_is_replaced(attack_world, tmp_path, name):
    """Item 7: a user's train.txt.old-1999 beside train.txt was deleted as a leftover of process 1999."""
    from dataset.splitting.splits import main as splits

    out = tmp_path / name.split(".old")[0]
    (tmp_path / name).write_text("the user's")
    for _ in range(2):  # a first write, then a replacement of its own output
        forget_claims()
        assert run_command(splits, ["write", "--out", str(out), "--name", "train", "1.0 0:1 pairs"]) == 0
    assert (tmp_path / name).read_text() == "the user's"
