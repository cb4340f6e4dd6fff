"""guardrails.output_paths: only a missing path, an empty folder or an output a record of the same command proves."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from guardrails import output_records
from guardrails.folder_lock import hold_run_folder
from guardrails.output_paths import (
    OutputRefused, check_output_prefix, check_run_folder, claim_file, claim_folder, claim_prefix, claimed_outputs,
    is_leftover, note_complete, own_run_folder, remove_stale_leftovers, temporary_name,
)
from guardrails.file_set import write_text_with_record
from guardrails.output_records import OutputKind, sidecar_record, write_record

THING = OutputKind("a thing", "tests.thing", "thing_manifest.json")
OTHER = OutputKind("a thing", "tests.other", "thing_manifest.json")


def _dead_pid() -> int:
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)


def _made(folder, kind=THING, files=None):
    """A folder output as ``kind``'s command writes it: files, then the record of them."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (files or {"config.json": "{}", "sub/weights.bin": "w"}).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    write_record(folder / kind.record, kind, folder)
    return folder


def test_folders_missing_empty_or_proven_by_their_record_are_allowed(tmp_path):
    assert claim_folder(tmp_path / "new", THING) == tmp_path / "new"
    (tmp_path / "empty").mkdir()
    claim_folder(tmp_path / "empty", THING)
    claim_folder(_made(tmp_path / "ours"), THING)
    assert set(claimed_outputs().values()) == {"unchanged"} and len(claimed_outputs()) == 3


@pytest.mark.parametrize("change, why", [
    (lambda f: (f / "notes.txt").write_text("mine"), "notes.txt is not one of the files thing_manifest.json lists"),
    (lambda f: (f / "config.json").write_text('{"edited": 1}'), "config.json changed since"),
    (lambda f: (f / "sub" / "weights.bin").write_text("x"), "sub/weights.bin changed since"),
    (lambda f: (f / "thing_manifest.json").unlink(), "no record proves it is an output of tests.thing"),
    (lambda f: (f / "thing_manifest.json").write_text('{"model_type": "gpt2"}'), "is not a record of this toolkit"),
    (lambda f: write_record(f / "thing_manifest.json", OTHER, f), "it is an output of tests.other"),
])
def test_a_folder_is_refused_unless_every_file_in_it_is_proven(tmp_path, change, why):
    folder = _made(tmp_path / "out")
    change(folder)
    before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    with pytest.raises(OutputRefused) as info:
        claim_folder(folder, THING, "--out")
    assert why in str(info.value) and "it is not provably a thing written by tests.thing" in str(info.value)
    assert "choose another --out" in str(info.value)
    assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == before and claimed_outputs() == {}


def test_a_look_alike_made_by_another_tool_is_refused_with_its_listing(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for i in range(10):
        (out / f"f{i}.txt").write_text("keep")
    with pytest.raises(OutputRefused) as info:
        claim_folder(out, THING, "--out")
    assert "(it holds: f0.txt, f1.txt" in str(info.value) and "and 2 more" in str(info.value)
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputRefused, match="exists and is a file"):
        claim_folder(tmp_path / "file", THING)


@pytest.mark.parametrize("name", ["train.txt.old-1999", "results.old-2023", ".x.tmp-1-ab", "x.tmp-99999999"])
def test_files_a_user_named_like_leftovers_are_theirs_and_the_folder_is_not_empty(tmp_path, name):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / name).write_text("the user's")
    (tmp_path / name).write_text("the user's too")
    assert not is_leftover(name)
    with pytest.raises(OutputRefused):
        claim_folder(folder, THING)
    assert remove_stale_leftovers(tmp_path / name.split(".old")[0].split(".tmp")[0]) == []
    assert (folder / name).read_text() == "the user's" and (tmp_path / name).read_text() == "the user's too"


def test_only_our_marked_leftovers_of_dead_processes_are_removed(tmp_path):
    dead, alive = _dead_pid(), os.getppid()
    out = tmp_path / "hf"
    mine = temporary_name(out)
    stale = [mine.with_name(mine.name.replace(f"-{os.getpid()}-", f"-{dead}-")),
             mine.with_name(mine.name.replace(f"tmp-{os.getpid()}-", f"old-{dead}-"))]
    kept = [mine.with_name(mine.name.replace(f"-{os.getpid()}-", f"-{alive}-")), tmp_path / f".hf.old-{dead}",
            tmp_path / f"hf.tmp-{dead}", out]
    for path in stale[:1] + kept[:1]:
        path.mkdir()
        (path / "config.json").write_text("{}")
    for path in stale[1:] + kept[1:]:
        path.write_text("x")
    assert all(is_leftover(p.name) for p in stale) and sorted(remove_stale_leftovers(out)) == sorted(stale)
    assert sorted(tmp_path.iterdir()) == sorted(kept)


def test_a_folder_with_only_dead_leftovers_inside_is_empty_and_they_go(tmp_path):
    out = tmp_path / "out"
    leftover = temporary_name(out / "release")
    leftover = leftover.with_name(leftover.name.replace(f"-{os.getpid()}-", f"-{_dead_pid()}-"))
    leftover.mkdir(parents=True)
    claim_folder(out, THING)
    assert list(out.iterdir()) == []


def test_files_are_replaced_only_when_their_record_proves_them(tmp_path):
    report = tmp_path / "report.json"
    claim_file(report, THING)
    report.write_text('{"match": true}')
    with pytest.raises(OutputRefused, match="no record proves it is an output of tests.thing"):
        claim_file(report, THING)  # written, but not yet recorded: as good as a user's file
    write_text_with_record(report, THING, '{"match": true}')  # the same file, now with its record
    assert json.loads(sidecar_record(report).read_text())["codeft_output"]["files"]["report.json"]["size"] == 15
    claim_file(report, THING)
    with pytest.raises(OutputRefused, match="it is an output of tests.thing"):
        claim_file(report, OTHER)
    report.write_text('{"match": false}')
    with pytest.raises(OutputRefused, match="report.json changed since report.json.manifest.json was written"):
        claim_file(report, THING)
    for folder in (str(tmp_path) + "/", tmp_path):
        with pytest.raises(OutputRefused, match="is a folder; give --output a file name"):
            claim_file(folder, THING)


def test_a_users_file_where_the_record_goes_is_refused(tmp_path):
    sidecar_record(tmp_path / "x.jsonl").write_text("my notes")
    with pytest.raises(OutputRefused, match="x.jsonl.manifest.json: exists and x.jsonl.manifest.json is not a"):
        claim_file(tmp_path / "x.jsonl", THING)


def test_records_are_named_after_the_whole_output_name(tmp_path):
    for name in ("x.txt", "x.jsonl"):
        write_text_with_record(tmp_path / name, THING, name)
    claim_file(tmp_path / "x.txt", THING)
    claim_file(tmp_path / "x.jsonl", THING)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.jsonl", "x.jsonl.manifest.json", "x.txt",
                                                          "x.txt.manifest.json"]


def test_an_input_of_the_command_is_never_an_output(tmp_path):
    data = tmp_path / "data.bin"
    data.write_bytes(b"1")
    with pytest.raises(OutputRefused, match="is .*data.bin, an input of this command"):
        claim_file(data, THING, "--out", inputs=[data])
    with pytest.raises(OutputRefused, match="holds .*data.bin, an input of this command"):
        claim_folder(tmp_path, THING, "--out", inputs=[None, data])


def test_large_files_are_fingerprinted_by_size_and_both_ends(tmp_path, monkeypatch):
    monkeypatch.setattr(output_records, "WHOLE_HASH_BYTES", 100)
    monkeypatch.setattr(output_records, "END_BYTES", 10)
    path = tmp_path / "big.bin"
    path.write_bytes(bytes(range(200)))
    first = output_records.fingerprint(path)
    assert set(first) == {"size", "sha256_ends"} and first["size"] == 200
    path.write_bytes(bytes(range(199)) + b"\xff")
    assert output_records.fingerprint(path) != first


def test_a_prefix_claim_proves_each_file_and_returns_the_old_runs_files_it_does_not_rewrite(tmp_path):
    record = tmp_path / "pairs.preprocess.manifest.json"
    train, valid = tmp_path / "pairs_inputs_document.bin", tmp_path / "pairs_valid_inputs_document.bin"
    for path in (train, valid):
        path.write_bytes(b"ours")
    write_record(record, THING, tmp_path, files=[train, valid])
    assert claim_prefix(record, THING, [train]) == [valid]  # the old hold-out: this run has none
    valid.write_bytes(b"changed by the user")
    assert claim_prefix(record, THING, [train]) == []  # no longer provably ours: left alone
    with pytest.raises(OutputRefused, match="pairs_valid_inputs_document.bin changed since"):
        claim_prefix(record, THING, [train, valid])
    fork = tmp_path / "fork_inputs_document.bin"
    fork.write_bytes(b"the fork's")
    with pytest.raises(OutputRefused, match="fork_inputs_document.bin: exists and no record proves it"):
        claim_prefix(tmp_path / "fork.preprocess.manifest.json", THING, [fork])


@pytest.mark.parametrize("prefix", ["", "out/", "out/.", ".", "..", "out/.."])
def test_a_prefix_needs_a_file_name_part(tmp_path, prefix):
    with pytest.raises(OutputRefused, match="needs a file-name part"):
        check_output_prefix(prefix)


def test_a_prefix_naming_a_folder_is_refused_and_a_good_one_passes(tmp_path):
    with pytest.raises(OutputRefused):
        check_output_prefix(str(tmp_path))
    assert check_output_prefix(str(tmp_path / "pairs")) == str(tmp_path / "pairs")


def test_states_follow_the_outputs_put_in_place(tmp_path):
    claim_folder(tmp_path / "hf", THING)
    check_run_folder(tmp_path / "save", THING, "training.save")
    note_complete(tmp_path / "hf")
    note_complete(tmp_path / "save" / "iter_0000002")
    assert claimed_outputs() == {(tmp_path / "hf").resolve(): "complete",
                                 (tmp_path / "save").resolve(): "intact (only complete outputs were added)"}


def test_a_run_folder_is_the_commands_own_only_with_its_record(tmp_path):
    save = tmp_path / "save"
    nonce = own_run_folder(save, THING)
    (save / "metrics.jsonl").write_text("{}")
    check_run_folder(save, THING, "training.save")  # its files change as it runs: the record names the folder
    assert own_run_folder(save, THING) == nonce
    with pytest.raises(OutputRefused, match="it is an output of tests.thing"):
        check_run_folder(save, OTHER, "training.save")
    users = tmp_path / "users"
    users.mkdir()
    (users / "iter_0000001").mkdir()
    with pytest.raises(OutputRefused, match="no thing_manifest.json of tests.thing proves it is one"):
        check_run_folder(users, THING, "training.save")


def test_a_run_folder_has_one_writer_at_a_time(tmp_path):
    save = tmp_path / "save"
    with hold_run_folder(save, THING, "training.save"):
        (save / "iter_0000001").mkdir()
        with pytest.raises(OutputRefused, match=f"another run \\(process {os.getpid()}\\) is writing into it"):
            with hold_run_folder(save, THING, "training.save"):
                pass
    with hold_run_folder(save, THING, "training.save"):  # released when the first run ended
        pass
    with hold_run_folder(tmp_path / "never_used", THING, "training.save"):
        pass
    assert not (tmp_path / "never_used").exists()  # a folder it made and left with nothing in it goes again
