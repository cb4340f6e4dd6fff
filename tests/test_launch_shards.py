"""dataset.launch: the shard array job and the merge job, built as argv and submitted to a stand-in SLURM.

The stand-ins (sbatch, squeue, scancel on PATH) only record their argv and answer as SLURM does; the real
scheduler test lives with the cluster fixture.
"""
import json
import shlex
import sys

import pytest

from dataset.preprocessing import launch, preprocess
from dataset.preprocessing.shard_jobs import array_spec, parse_job_id, parse_squeue, shards_in_flight
from dataset.preprocessing.shard_plan import ShardSpec, shards_folder

FAKE = """#!{python}
import json, os, sys
from pathlib import Path
here = Path(os.environ["FAKE_SLURM"])
name = Path(sys.argv[0]).name
with open(here / "calls.jsonl", "a") as f:
    f.write(json.dumps([name, *sys.argv[1:]]) + "\\n")
if name == "sbatch":
    counter = here / "next_id"
    job = int(counter.read_text()) if counter.exists() else 101
    counter.write_text(str(job + 1))
    print(job)
elif name == "squeue":
    queue = here / "queue"
    print(queue.read_text() if queue.exists() else "", end="")
"""


@pytest.fixture
def slurm(tmp_path, monkeypatch):
    bin_dir = tmp_path / "fake_slurm"
    bin_dir.mkdir()
    for name in ("sbatch", "squeue", "scancel"):
        (bin_dir / name).write_text(FAKE.format(python=sys.executable))
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{__import__('os').environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM", str(bin_dir))

    def calls():
        path = bin_dir / "calls.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return bin_dir, calls


@pytest.fixture
def run_config(fork_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "my run $(touch pwned).yaml"
    config.write_text(
        "data:\n"
        f"  inputs: ['{fork_dir / 'sample.jsonl'}', '{fork_dir / 'sample2.jsonl'}']\n"
        f"  tokenizer: '{fork_dir / 'tokenizer.json'}'\n"
        "  output_prefix: out/data/pairs\n"
        "  valid_fraction: 0.1\n"
        "  workers: 1\n"
        "  num_shards: 3\n"
        "cluster:\n"
        "  partition: cpu\n"
        "  nodes: 4            # the GPU job's key: not this launcher's business\n"
        "  preprocess_cpus_per_task: 6\n"
        "  preprocess_mem: 12G\n"
        "  preprocess_time: '2:00:00'\n"
    )
    return config


def _option(argv, name):
    return next(a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}="))


def test_pure_pieces():
    assert array_spec([0, 1, 2]) == "0-2" and array_spec([7, 1, 4, 5, 2], 3) == "1-2,4-5,7%3"
    assert parse_job_id("4242\n") == "4242" and parse_job_id("77;cluster\n") == "77"
    with pytest.raises(ValueError):
        parse_job_id("sbatch: error: invalid partition")
    states = parse_squeue("101_0|RUNNING\n101_2|PENDING\n102|PENDING\n99_1|RUNNING\n101_1|COMPLETED\n")
    assert shards_in_flight(states, ["101"]) == {0: "101_0", 2: "101_2"}


def test_dry_run_prints_the_array_and_the_dependent_merge_and_runs_nothing(run_config, slurm, capsys):
    assert launch.main(["submit", "--config", str(run_config), "--dry-run", "cluster.site_env=no such file"]) == 0
    lines = capsys.readouterr().out.splitlines()
    array, merge = shlex.split(lines[0]), shlex.split(lines[1])
    assert array[0] == "sbatch" and _option(array, "array") == "0-2" and _option(array, "cpus-per-task") == "6"
    assert _option(array, "mem") == "12G" and _option(array, "time") == "2:00:00"
    assert _option(array, "partition") == "cpu"
    body = shlex.split(_option(array, "wrap"))
    assert body[:4] == ["exec", sys.executable, "-m", "dataset.preprocess"]
    assert body[body.index("--config") + 1] == str(run_config)  # one argument, $(...) and spaces inert
    assert body[-2:] == ["--num-shards", "3"]
    assert merge[0] == "sbatch" and _option(merge, "dependency") == "afterok:<array job id>"
    assert shlex.split(_option(merge, "wrap"))[3] == "dataset.merge_shards"
    assert "0 of 3 done" in lines[2]
    assert slurm[1]() == [] and not (run_config.parent / "pwned").exists()


def test_resubmits_only_the_cancelled_shard_and_a_new_merge(run_config, slurm, capsys, monkeypatch):
    bin_dir, calls = slurm
    assert launch.main(["submit", "--config", str(run_config)]) == 0
    first = calls()
    assert [c[0] for c in first] == ["sbatch", "sbatch"]
    assert _option(first[0], "array") == "0-2" and _option(first[1], "dependency") == "afterok:101"
    # the array ran: shards 0 and 2 finished, shard 1 was cancelled; the merge (102) still waits
    for index in (0, 2):
        monkeypatch.setenv("SLURM_ARRAY_TASK_ID", str(index))
        assert preprocess.main(["--config", str(run_config)]) == 0
    (bin_dir / "queue").write_text("102|PENDING\n")
    capsys.readouterr()
    assert launch.main(["status", "--config", str(run_config)]) == 0
    assert "2 of 3 done, 0 queued or running, 1 to submit" in capsys.readouterr().out
    first = calls()
    assert launch.main(["submit", "--config", str(run_config)]) == 0
    second = calls()[len(first):]
    assert [c[0] for c in second] == ["squeue", "scancel", "sbatch", "sbatch"]
    assert second[1][1:] == ["102"] and _option(second[2], "array") == "1"
    assert _option(second[3], "dependency") == "afterok:103"
    # shard 1 still running under 103: a third submit leaves everything as it is
    (bin_dir / "queue").write_text("103_1|RUNNING\n104|PENDING\n")
    assert launch.main(["submit", "--config", str(run_config)]) == 0
    assert [c[0] for c in calls()[len(first) + len(second):]] == ["squeue"]
    assert "merge job 104 is waiting" in capsys.readouterr().out
    state = json.loads((shards_folder("out/data/pairs") / "launch.json").read_text())
    assert state["array_jobs"] == ["101", "103"] and state["merge_jobs"] == ["102", "104"]
    # the config changed since shards 0 and 2 were made: they are not this run's, so they are made again
    (bin_dir / "queue").write_text("")
    before = len(calls())
    assert launch.main(["submit", "--config", str(run_config), "data.append_eod=true"]) == 0
    assert "shards [0, 2] were made with other settings" in capsys.readouterr().out
    assert _option(calls()[before + 1], "array") == "0-2"


def test_a_config_a_shard_cannot_run_is_refused_before_submitting(run_config, slurm, capsys):
    assert launch.main(["submit", "--config", str(run_config), "data.valid_fraction=0",
                        "data.valid_count=5", "--dry-run"]) == 2
    assert "--valid-fraction" in capsys.readouterr().err
    assert launch.main(["submit", "--config", str(run_config), "cluster.preprocess_mem=lots"]) == 2
    assert "preprocess_mem" in capsys.readouterr().err
    assert slurm[1]() == []


def test_the_site_env_is_sourced_first_when_it_exists(run_config, slurm, capsys):
    site = run_config.parent / "site env; touch pwned2"
    site.write_text("export CODEFT_SITE=1\n")
    assert launch.main(["submit", "--config", str(run_config), "--dry-run", f"cluster.site_env={site}",
                        "cluster.qos=low"]) == 0
    array, merge = (shlex.split(line) for line in capsys.readouterr().out.splitlines()[:2])
    for argv in (array, merge):
        body = _option(argv, "wrap")
        assert shlex.split(body)[:3] == [".", str(site), "&&"] and _option(argv, "qos") == "low"
        assert body.startswith(f". {shlex.quote(str(site))} && exec ")
    assert not (run_config.parent / "pwned2").exists()


def _make_and_merge(run_config, monkeypatch, *overrides):
    from dataset.preprocessing import merge_shards

    for index in range(3):
        monkeypatch.setenv("SLURM_ARRAY_TASK_ID", str(index))
        assert preprocess.main(["--config", str(run_config), *overrides]) == 0
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID")
    assert merge_shards.main(["--output-prefix", "out/data/pairs", "--num-shards", "3"]) == 0


def test_a_merge_made_with_another_tokenizer_or_input_is_not_already_merged(run_config, fork_dir, slurm, capsys,
                                                                             monkeypatch, tmp_path):
    _make_and_merge(run_config, monkeypatch)
    capsys.readouterr()
    assert launch.main(["submit", "--config", str(run_config), "--dry-run"]) == 0
    assert "already merged" in capsys.readouterr().out  # the run as it was: nothing to do
    other = tmp_path / "other_tokenizer.json"  # the same vocabulary, other bytes: another sha256
    other.write_text(json.dumps(json.loads((fork_dir / "tokenizer.json").read_text()), indent=1))
    assert launch.main(["status", "--config", str(run_config), f"data.tokenizer={other}"]) == 0
    out = capsys.readouterr().out
    assert "shards [0, 1, 2] were made with other settings" in out and "submit makes it again" in out, out
    assert launch.main(["submit", "--config", str(run_config), "--dry-run", f"data.tokenizer={other}"]) == 0
    out = capsys.readouterr().out
    assert "already merged" not in out and "was merged from other settings, inputs or tokenizer" in out, out
    assert _option(shlex.split(out.splitlines()[2]), "array") == "0-2"  # every shard made again, then a merge
    grown = tmp_path / "grown.jsonl"  # an input that changed (here: grew) since the merge
    grown.write_bytes((fork_dir / "sample.jsonl").read_bytes() * 2)
    inputs = f"data.inputs=['{grown}', '{fork_dir / 'sample2.jsonl'}']"
    assert launch.main(["submit", "--config", str(run_config), "--dry-run", inputs]) == 0
    assert "already merged" not in capsys.readouterr().out
    assert slurm[1]() == []


def test_an_input_edited_in_place_after_the_merge_is_not_already_merged(run_config, fork_dir, slurm, capsys,
                                                                       monkeypatch, tmp_path):
    """Issue 16, item 12: the facts compared paths and sizes only, so an input edited in place at the same size
    still got "already merged; nothing to submit". A touch alone (same bytes) is still the same input."""
    import os

    copies = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    for copy, name in zip(copies, ("sample.jsonl", "sample2.jsonl")):
        copy.write_bytes((fork_dir / name).read_bytes())
    inputs = f"data.inputs=['{copies[0]}', '{copies[1]}']"
    _make_and_merge(run_config, monkeypatch, inputs)
    later = os.stat(copies[1]).st_mtime_ns + 5_000_000_000
    os.utime(copies[1], ns=(later, later))  # touched: the pieces are hashed again, and still match
    capsys.readouterr()
    assert launch.main(["submit", "--config", str(run_config), "--dry-run", inputs]) == 0
    assert "already merged" in capsys.readouterr().out
    data = copies[1].read_bytes()
    at = data.index(b'"', len(data) // 2) + 1  # a byte inside a JSON string: still a valid record
    copies[1].write_bytes(data[:at] + (b"Z" if data[at:at + 1] != b"Z" else b"Y") + data[at + 1:])
    assert os.path.getsize(copies[1]) == len(data)
    assert launch.main(["status", "--config", str(run_config), inputs]) == 0
    out = capsys.readouterr().out
    edited = [line for line in out.splitlines() if line.startswith("shards [")]
    assert edited and f"read {copies[1]}, edited in place since" in edited[0], out
    assert "submit makes it again" in out and "merged: " not in out, out
    assert launch.main(["submit", "--config", str(run_config), "--dry-run", inputs]) == 0
    out = capsys.readouterr().out
    assert "already merged" not in out and "edited in place since: making" in out, out
    assert "--array=" in out and slurm[1]() == []


def test_status_hashes_each_piece_of_a_touched_input_once(run_config, fork_dir, slurm, capsys, monkeypatch,
                                                           tmp_path):
    """status checks the shards' pieces and then the merge's, which are the same pieces: an input touched since
    (other mtime, same bytes) was read twice by one command, the whole corpus for a corpus touched by a copy."""
    import collections
    import os

    from dataset.preprocessing import shard_manifests

    copies = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    for copy, name in zip(copies, ("sample.jsonl", "sample2.jsonl")):
        copy.write_bytes((fork_dir / name).read_bytes())
    inputs = f"data.inputs=['{copies[0]}', '{copies[1]}']"
    _make_and_merge(run_config, monkeypatch, inputs)
    for copy in copies:
        later = os.stat(copy).st_mtime_ns + 5_000_000_000
        os.utime(copy, ns=(later, later))
    calls, real = collections.Counter(), shard_manifests.range_sha256
    monkeypatch.setattr(shard_manifests, "range_sha256", lambda *key: calls.update([key]) or real(*key))
    capsys.readouterr()
    assert launch.main(["status", "--config", str(run_config), inputs]) == 0
    out = capsys.readouterr().out
    assert "merged: " in out and "edited" not in out, out
    assert {path for path, _, _ in calls} == {str(c) for c in copies}  # every piece was checked ...
    assert set(calls.values()) == {1}, calls  # ... once


@pytest.mark.parametrize("damage", ["cut", "a list", "keys missing"])
def test_damaged_launch_state_or_shard_manifest_is_one_line(run_config, slurm, capsys, monkeypatch, damage):
    from dataset.preprocessing.shard_manifests import shard_manifest_path

    assert launch.main(["submit", "--config", str(run_config)]) == 0
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "0")
    assert preprocess.main(["--config", str(run_config)]) == 0
    capsys.readouterr()
    state = shards_folder("out/data/pairs") / "launch.json"
    manifest = shard_manifest_path("out/data/pairs", ShardSpec(0, 3))
    for path in (state, manifest):
        good = path.read_text()
        path.write_text({"cut": good[: len(good) // 2], "a list": "[1, 2]\n",
                         "keys missing": json.dumps({"num_shards": 3, "shard": {}})}[damage])
        for command in ("status", "submit"):
            assert launch.main([command, "--config", str(run_config)]) == 2
            err = capsys.readouterr().err
            assert str(path) in err and len(err.strip().splitlines()) == 1, err
        path.write_text(good)
    assert [c[0] for c in slurm[1]()] == ["sbatch", "sbatch"]  # only the first submission reached SLURM
