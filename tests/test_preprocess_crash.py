"""Crash safety: a killed or failing run leaves nothing a Megatron reader accepts; a rerun gives the same bytes."""
import os
import signal
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

import dataset.formats.indexed_dataset as indexed_dataset
import dataset.preprocessing.preprocess as preprocess
from dataset.formats.indexed_dataset import IndexedDataset
from dataset.preprocessing.preprocess import main
from guardrails.command_errors import run_command
from guardrails.output_paths import forget_claims
from dataset.formats.preprocess_manifest import manifest_path
from tests.conftest import REPO_ROOT

ROLES = ("inputs", "targets")


def _finished_datasets(directory):
    """Every prefix in ``directory`` that our reader accepts as a complete dataset."""
    accepted = []
    for idx in directory.glob("*.idx"):
        try:
            IndexedDataset(str(idx)[: -len(".idx")])
            accepted.append(idx)
        except (OSError, ValueError):
            pass
    return accepted


def _uint16_idx(sizes):
    """The MMIDIDX bytes written out by hand (header, sizes, byte offsets, document index), not by our writer."""
    sizes = np.asarray(sizes, dtype="<i4")
    pointers = np.concatenate([[0], np.cumsum(sizes[:-1], dtype=np.int64) * 2]).astype("<i8")
    header = b"MMIDIDX\x00\x00" + struct.pack("<QBQQ", 1, 8, len(sizes), len(sizes) + 1)  # version 1, uint16 = 8
    return header + sizes.tobytes() + pointers.tobytes() + np.arange(len(sizes) + 1, dtype="<i8").tobytes()


def _args(fork_dir, data, prefix, *extra):
    return ["--input", str(data), "--tokenizer", str(fork_dir / "tokenizer.json"), "--output-prefix", str(prefix),
            *map(str, extra)]


@pytest.fixture
def big_input(fork_dir, tmp_path):
    """About 5 MB of fixture records: long enough to be killed in the middle."""
    data = tmp_path / "big.jsonl"
    data.write_bytes((fork_dir / "sample.jsonl").read_bytes() * 32)
    return data


def test_sigkill_mid_run_leaves_no_dataset_and_rerun_is_identical(fork_dir, tmp_path, big_input):
    out = tmp_path / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    child = subprocess.Popen([sys.executable, "-m", "dataset.preprocess",
                              *_args(fork_dir, big_input, out / "ds", "--workers", 1, "--valid-count", 100)],
                             cwd=REPO_ROOT, env=env, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not (out.exists() and any(".tmp-" in p.name for p in out.iterdir())):
        assert child.poll() is None and time.monotonic() < deadline, "preprocess ended before it could be killed"
        time.sleep(0.01)
    time.sleep(0.3)  # well into tokenizing
    assert child.poll() is None, "preprocess finished before the kill: make the input bigger"
    os.killpg(child.pid, signal.SIGKILL)  # the whole group: the main process and its workers
    child.wait()
    assert any(".tmp-" in p.name for p in out.iterdir())  # it was killed with work under way...
    assert not list(out.glob("*.idx")) and not _finished_datasets(out)  # ...and nothing looks finished
    assert not manifest_path(out / "ds").exists()

    assert main(_args(fork_dir, big_input, out / "ds", "--valid-count", 100)) == 0
    # what an uninterrupted run must write, built from the fork's files: the input is sample.jsonl 32 times
    heldout = np.zeros(32 * 400, dtype=bool)
    heldout[np.random.RandomState(1234).choice(32 * 400, 100, replace=False)] = True
    for role in ROLES:
        fork = IndexedDataset(fork_dir / f"sample_{role}_document")
        docs = [fork[i] for i in range(400)]
        for name, chosen in (("ds", ~heldout), ("ds_valid", heldout)):
            ordinals = np.flatnonzero(chosen)
            sizes = fork.sizes[ordinals % 400]
            assert (out / f"{name}_{role}_document.idx").read_bytes() == _uint16_idx(sizes)
            expected = np.concatenate([docs[i % 400] for i in ordinals]).astype("<u2").tobytes()
            assert (out / f"{name}_{role}_document.bin").read_bytes() == expected
    assert not [p for p in out.iterdir() if ".tmp-" in p.name], "the rerun removes the dead run's temporaries"


def test_interrupt_mid_run_removes_every_temporary(fork_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(preprocess, "CHUNK_BYTES", 8192)  # many chunks from the small fixture
    real, calls = preprocess._write_chunk, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(preprocess, "_write_chunk", interrupted)
    out = tmp_path / "out"
    assert run_command(main, _args(fork_dir, fork_dir / "sample.jsonl", out / "ds", "--valid-count", 10)) == 130
    assert len(calls) == 3
    assert not out.exists()
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"preprocess: interrupted; {out / 'ds'}_* is unchanged"


def test_interrupt_over_an_earlier_output_says_it_is_unchanged_and_keeps_it(fork_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    assert run_command(main, _args(fork_dir, fork_dir / "sample.jsonl", out / "ds")) == 0
    forget_claims()  # the second run, as a new process
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    monkeypatch.setattr(preprocess, "_write_chunk", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    capsys.readouterr()
    assert run_command(main, _args(fork_dir, fork_dir / "sample.jsonl", out / "ds")) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"preprocess: interrupted; {out / 'ds'}_* is unchanged"
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_failed_rename_takes_back_the_renamed_files(fork_dir, tmp_path, monkeypatch):
    real, calls = indexed_dataset.IndexedDatasetWriter.commit_index, []

    def failing(self):
        calls.append(self.idx_path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real(self)

    monkeypatch.setattr(indexed_dataset.IndexedDatasetWriter, "commit_index", failing)
    out = tmp_path / "out"
    assert run_command(main, _args(fork_dir, fork_dir / "sample.jsonl", out / "ds")) == 2
    assert len(calls) == 2  # the second .idx rename failed, after the first had put an index in place
    assert not out.exists()  # renamed files taken back, temporaries removed, then the directory it made


def test_failed_rename_in_an_existing_directory(fork_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(indexed_dataset.IndexedDatasetWriter, "commit_index",
                        lambda self: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    (tmp_path / "keep.txt").write_text("not ours")
    assert run_command(main, _args(fork_dir, fork_dir / "sample.jsonl", tmp_path / "ds")) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_a_failed_run_keeps_the_previous_outputs(fork_dir, tmp_path):
    out = tmp_path / "out"
    assert main(_args(fork_dir, fork_dir / "sample2.jsonl", out / "ds")) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes((fork_dir / "sample.jsonl").read_bytes() + b'{"inputs": "x"}\n')
    assert main(_args(fork_dir, bad, out / "ds")) == 2
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    stale = tmp_path / f".ds_inputs_document.bin.codeft.tmp-{pid}-0123abcd"
    alive = tmp_path / f".ds_inputs_document.bin.codeft.tmp-{os.getppid()}-0123abcd"
    other = tmp_path / f".ds_inputs_document_x.bin.codeft.tmp-{pid}-0123abcd"
    users = tmp_path / f"ds_inputs_document.bin.tmp-{pid}"  # named like the temporaries of old versions: a user's
    for p in (stale, alive, other, users):
        p.write_bytes(b"x")
    assert indexed_dataset.remove_stale_temporaries(tmp_path / "ds_inputs_document") == [stale]
    assert alive.exists() and other.exists() and users.exists() and not stale.exists()


def test_a_rerun_without_holdout_removes_the_old_valid_files(fork_dir, tmp_path):
    out = tmp_path / "out"
    assert main(_args(fork_dir, fork_dir / "sample2.jsonl", out / "ds", "--valid-count", 5)) == 0
    assert len(_finished_datasets(out)) == 4
    assert main(_args(fork_dir, fork_dir / "sample2.jsonl", out / "ds")) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["ds.preprocess.manifest.json"] + [f"ds_{r}_document.{e}" for r in ROLES for e in ("bin", "idx")])


@pytest.mark.parametrize("prefix", ["out/", "out/.", "."])
def test_a_prefix_without_a_file_name_part_is_refused(fork_dir, tmp_path, capsys, prefix, monkeypatch):
    # Issue 7 item 5: "out/" wrote out/_inputs_document.bin and the manifest into out's parent.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    assert main(_args(fork_dir, fork_dir / "sample.jsonl", prefix)) == 2
    assert "needs a file-name part" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["out"]
