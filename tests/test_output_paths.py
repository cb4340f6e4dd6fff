"""guardrails.output_paths: only a missing path, an empty folder or an output of the same kind is ever written."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from guardrails.output_paths import (
    OutputRefused, check_output_prefix, claim_file, claim_folder, claimed_outputs, json_object_with,
    note_complete, output_entries, remove_stale_leftovers,
)


def _never(path):
    return "is not ours"


def test_folders_missing_empty_or_of_the_same_kind_are_allowed(tmp_path):
    assert claim_folder(tmp_path / "new", "a thing", _never) == tmp_path / "new"
    (tmp_path / "empty").mkdir()
    claim_folder(tmp_path / "empty", "a thing", _never)
    (tmp_path / "ours").mkdir()
    (tmp_path / "ours" / "x").write_text("1")
    claim_folder(tmp_path / "ours", "a thing", lambda path: None)
    assert set(claimed_outputs().values()) == {"unchanged"} and len(claimed_outputs()) == 3


def test_anything_else_is_refused_with_its_listing(tmp_path):
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    for i in range(10):
        (out / f"f{i}.txt").write_text("keep")
    with pytest.raises(OutputRefused) as info:
        claim_folder(out, "a model folder", _never, "--out")
    message = str(info.value)
    assert message.startswith(f"{out}: is not ours (it holds: f0.txt, f1.txt") and "and 3 more" in message
    assert "it is not a model folder" in message and "choose another --out" in message
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputRefused, match="exists and is a file"):
        claim_folder(tmp_path / "file", "a model folder", lambda path: None)
    assert claimed_outputs() == {}


def test_files_are_replaced_only_when_the_recogniser_accepts_them(tmp_path):
    report = tmp_path / "report.json"
    claim_file(report, "a report", json_object_with("match"))
    report.write_text('{"match": true}')
    claim_file(report, "a report", json_object_with("match"))
    report.write_text('{"other": 1}')
    with pytest.raises(OutputRefused, match="not a JSON object with 'match'"):
        claim_file(report, "a report", json_object_with("match"))
    report.write_text("notes")
    with pytest.raises(OutputRefused, match="exists and is not JSON"):
        claim_file(report, "a report", json_object_with("match"))
    with pytest.raises(OutputRefused, match="exists"):
        claim_file(report, "a new file", None)
    for folder in (str(tmp_path) + "/", tmp_path):
        with pytest.raises(OutputRefused, match="is a folder; give --output a file name"):
            claim_file(folder, "a report", None)


@pytest.mark.parametrize("prefix", ["", "out/", "out/.", ".", "..", "out/.."])
def test_a_prefix_needs_a_file_name_part(tmp_path, prefix):
    with pytest.raises(OutputRefused, match="needs a file-name part"):
        check_output_prefix(prefix)


def test_a_prefix_naming_a_folder_is_refused_and_a_good_one_passes(tmp_path):
    with pytest.raises(OutputRefused):
        check_output_prefix(str(tmp_path))
    assert check_output_prefix(str(tmp_path / "pairs")) == str(tmp_path / "pairs")


def test_leftovers_of_dead_processes_are_removed_and_nothing_else(tmp_path):
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)
    alive = os.getppid()
    stale = [tmp_path / f".hf.old-{dead}", tmp_path / f".hf.tmp-{dead}", tmp_path / f".hf.tmp-{dead}-0a1b",
             tmp_path / f"hf.tmp-{dead}"]
    kept = [tmp_path / f".hf.old-{alive}", tmp_path / f".hf2.old-{dead}", tmp_path / "hf", tmp_path / ".hf.old-x"]
    for path in stale[:1] + kept[:2]:
        path.mkdir()
        (path / "config.json").write_text("{}")
    for path in stale[1:] + kept[2:]:
        path.write_text("x")
    assert sorted(remove_stale_leftovers(tmp_path / "hf")) == sorted(stale)
    assert sorted(tmp_path.iterdir()) == sorted(kept)


def test_states_follow_the_outputs_put_in_place(tmp_path):
    claim_folder(tmp_path / "hf", "a model folder", _never)
    claim_folder(tmp_path / "save", "a save folder", _never)
    note_complete(tmp_path / "hf")
    note_complete(tmp_path / "save" / "iter_0000002")
    assert claimed_outputs() == {(tmp_path / "hf").resolve(): "complete",
                                 (tmp_path / "save").resolve(): "intact (only complete outputs were added)"}


def test_leftovers_inside_an_accepted_folder_go_and_never_count_as_user_files(tmp_path):
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)
    ours = tmp_path / "ours"
    (ours / f".release.tmp-{dead}").mkdir(parents=True)  # a killed run's half-built folder inside its root
    (ours / f".metrics.jsonl.tmp-{os.getppid()}-ab").write_text("a live run's temporary")
    (ours / "release").mkdir()
    claim_folder(ours, "a root", lambda path: None if {p.name for p in output_entries(path)} == {"release"} else "no")
    assert sorted(p.name for p in ours.iterdir()) == [f".metrics.jsonl.tmp-{os.getppid()}-ab", "release"]
    theirs = tmp_path / "theirs"
    (theirs / f".x.tmp-{dead}").mkdir(parents=True)
    (theirs / "notes.txt").write_text("keep")
    with pytest.raises(OutputRefused):
        claim_folder(theirs, "a root", lambda path: "no")
    assert sorted(p.name for p in theirs.iterdir()) == [f".x.tmp-{dead}", "notes.txt"]  # refused: nothing removed
