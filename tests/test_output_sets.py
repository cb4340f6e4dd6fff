"""Outputs of several files appear together or not at all (issue 16, item 8's rule; ``guardrails.file_set``).

``train_tokenizer`` writes tokenizer.json, two config files and their record; ``evaluation report`` the markdown,
its plot and their record. Each run is interrupted in the middle of its set, two ways: Ctrl-C while the second
file is made durable (before any is in place), and a real SIGTERM sent to the process just as the second file
is renamed into place. Either way the folder must hold one whole set (the earlier one, or the new one) that a
rerun may replace: written one file at a time, the first left a new tokenizer.json beside old config files and
every later run was refused ("changed since tokenizer.json.manifest.json was written").
"""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from dataset.builders import train_tokenizer
from evaluation import commands
from guardrails.command_errors import run_command
from guardrails.output_paths import forget_claims
from guardrails.output_records import proof_problem, sidecar_record
from tests.attack_world import tree
from tests.conftest import FORK_FIXTURES
from tests.test_eval_comparison import PROBLEMS, score


@pytest.fixture(scope="module")
def report_runs(tmp_path_factory) -> tuple[Path, Path]:
    """Two scored runs of the fixture problems that differ (so the report has a plot)."""
    folder = tmp_path_factory.mktemp("runs")
    rows = [json.loads(line) for line in (PROBLEMS / "python_samples.jsonl").read_text().splitlines()]
    right = {r["task_id"]: r for r in rows if r["expected"]}
    wrong = {r["task_id"]: r for r in rows if not r["expected"]}
    base = score(folder, "base", [right["Python/0"], wrong["Python/1"]])
    tuned = score(folder, "tuned", [right["Python/0"], right["Python/1"]])
    return base, tuned


def _tokenizer(folder: Path, runs) -> tuple[object, list[str], Path, object]:
    out = folder / "tok" / "tokenizer.json"
    argv = ["--inputs", str(FORK_FIXTURES / "sample.jsonl"), "--output", str(out), "--vocab-size", "300"]
    return train_tokenizer.main, argv, out, train_tokenizer.TOKENIZER_FILES


def _report(folder: Path, runs) -> tuple[object, list[str], Path, object]:
    out = folder / "rep" / "report.md"
    argv = ["report", "--base", str(runs[0]), "--tuned", str(runs[1]), "--out", str(out)]
    return commands.main, argv, out, commands.output_kind("report")


def _swapped(argv: list[str]) -> list[str]:
    """The report's argv with base and tuned swapped: another text and another plot."""
    base, tuned = argv[argv.index("--base") + 1], argv[argv.index("--tuned") + 1]
    return [tuned if a == base else base if a == tuned else a for a in argv]


def _at_second_call(monkeypatch, name: str, act) -> None:
    """Replace ``os.NAME`` by a wrapper that does ``act()`` before its second call goes through."""
    real, calls = getattr(os, name), []

    def wrapper(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            act()
        return real(*args, **kwargs)

    monkeypatch.setattr(os, name, wrapper)


def _ctrl_c():
    raise KeyboardInterrupt


def _sigterm():
    os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.parametrize("command", [_tokenizer, _report], ids=["train_tokenizer", "report"])
@pytest.mark.parametrize("call, act, status", [("fsync", _ctrl_c, 130), ("replace", _sigterm, 143)],
                         ids=["ctrl-c-at-second-fsync", "sigterm-at-second-rename"])
def test_an_interrupted_set_is_whole_and_a_rerun_replaces_it(command, call, act, status, report_runs, tmp_path,
                                                             monkeypatch, capsys):
    main, argv, out, kind = command(tmp_path, report_runs)
    assert run_command(main, argv) == 0
    before = tree(out.parent)
    assert len(before) >= 3  # the output, a companion and the record

    forget_claims()
    with monkeypatch.context() as patched:
        _at_second_call(patched, call, act)
        changed = argv[:-1] + ["310"] if command is _tokenizer else _swapped(argv)  # other files, all of them
        assert run_command(main, changed) == status
    after = tree(out.parent)
    assert not [name for name in after if ".codeft.tmp-" in name]
    record = sidecar_record(out)
    present = [out.parent / name for name in after if name != record.name]
    assert proof_problem(record, kind, out.parent, present) is None  # the record proves every file beside it
    if status == 130:  # interrupted before any file was in place: the earlier set, untouched
        assert after == before
    else:  # the signal came during the renames, which finish first: the new set, whole
        assert after != before and set(after) == set(before)
        said = capsys.readouterr().err.strip().splitlines()[-1]
        assert "terminated (SIGTERM); " in said and f"{out} is complete" in said and "unchanged" not in said
    forget_claims()
    assert run_command(main, argv) == 0  # a rerun may replace it
