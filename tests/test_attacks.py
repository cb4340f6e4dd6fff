"""Every command of the README, attacked as a careless or unlucky user would: nothing of theirs is ever lost.

Each command writes into an output folder that is read-only, full, or already holds unrelated user files with
the names the command writes; it is interrupted (SIGINT). Every case asserts no traceback on stderr, the exit
status (2 for a user error, 130 for an interrupt), and that every file that was there before is still there,
byte for byte. Read-only and full folders are small tmpfs mounts (root only: root ignores permissions, so only
a mount makes a folder read-only; skipped with the reason otherwise). The commands of one scenario run in one
interpreter (``tests/attack_driver.py``, each exactly as its ``__main__``) so the file stays fast.

Issue 7. Wrong-type, unknown-section and duplicate-key configs are tests/test_run_config.py's.
"""
from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import FORK_FIXTURES, REPO_ROOT
from tests.local_engine_fixtures import run_overrides, subprocess_env
from tests.small_mounts import mount_skip_reason, small_tmpfs

TOKENIZER = FORK_FIXTURES / "tokenizer.json"
USER_FILE = {"notes.txt": b"the user's own notes\n"}
FOREIGN = b"not an output of this toolkit\n"


@pytest.fixture(scope="module")
def world(attack_world) -> Path:
    """Tiny inputs for every command (``tests.attack_world``, built once per session)."""
    return attack_world



def commands(w: Path, out: Path) -> dict[str, tuple[str, list[str], str]]:
    """name -> (module, argv, the output path the command writes, relative to ``out``)."""
    def o(name: str) -> str:
        return str(out / name)

    return {
        "commits_to_jsonl": ("dataset.commits_to_jsonl", ["--repo", str(w / "repo"), "--output", o("commits.jsonl")],
                             "commits.jsonl"),
        "docstring_pairs": ("dataset.docstring_pairs", ["--roots", str(w / "src"), "--output", o("pairs.jsonl")],
                            "pairs.jsonl"),
        "train_tokenizer": ("dataset.train_tokenizer", ["--inputs", str(w / "pairs.jsonl"), "--output",
                                                        o("tokenizer.json"), "--vocab-size", "300"], "tokenizer.json"),
        "preprocess": ("dataset.preprocess", ["--input", str(w / "pairs.jsonl"), "--tokenizer", str(TOKENIZER),
                                              "--output-prefix", o("data/pairs"), "--workers", "1"], "data"),
        "splits_write": ("dataset.splits", ["write", "--out", o("train_data_paths.txt"), "--name", "train",
                                            "1.0 0:1 pairs"], "train_data_paths.txt"),
        "splits_plan": ("dataset.splits", ["plan", "--train", str(w / "train_data_paths.txt"), "--seq-length", "256",
                                           "--train-iters", "2", "--global-batch-size", "4", "--json",
                                           o("split_plan.json")], "split_plan.json"),
        "packing": ("training.packing", ["--split-file", str(w / "train_data_paths.txt"), "--seq-length", "256",
                                         "--num-samples", "8", "--cache-dir", o("maps"), "--report",
                                         o("packing.json")], "packing.json"),
        "model_init": ("training.model_init", ["--tokenizer", str(TOKENIZER), "--out", o("base"), "--layers", "1",
                                               "--hidden", "32", "--heads", "4", "--max-positions", "64"], "base"),
        # no warmup: one iteration of 4 samples could not decay after a warmup of 4 (a config error, found first)
        "finetune": ("training.finetune", run_overrides(w, w / "base", out / "run", train_iters=1, save_interval=1,
                                                        eval_interval=1, lr_warmup_samples=0), "run"),
        "model_init_llama": ("training.model_init", ["--family", "llama", "--tokenizer", str(TOKENIZER), "--out",
                                                     o("llama"), "--layers", "1", "--hidden", "32", "--heads", "4",
                                                     "--max-positions", "64"], "llama"),
        "export": ("training.export", ["--save", str(w / "run"), "--out", o("export"), "--tokenizer", str(TOKENIZER)],
                   "export"),
        "export_llama": ("training.export", ["--save", str(w / "llama_run"), "--out", o("export_llama")],
                         "export_llama"),
        "hf_to_megatron": ("conversion.hf_to_megatron", ["--hf", str(w / "hf"), "--out", o("ckpt")], "ckpt"),
        "prepare_release": ("conversion.prepare_release", ["--megatron", str(w / "run"), "--out", o("rel")], "rel"),
        "megatron_to_hf": ("conversion.megatron_to_hf", ["--megatron", str(w / "base"), "--out", o("hf"),
                                                         "--tokenizer", str(TOKENIZER), "--no-progress"], "hf"),
        "verify_shards": ("conversion.verify", ["shards", str(w / "hf"), str(w / "hf"), "--json", o("shards.json")],
                          "shards.json"),
        "verify_logits": ("conversion.verify", ["logits", "--hf", str(w / "hf"), "--hf-b", str(w / "hf"),
                                                "--tokenizer", str(TOKENIZER), "--no-builtin-prompts", "--prompts",
                                                str(w / "prompts.jsonl"), "--json", o("logits.json")], "logits.json"),
    }


def _drive(batch: list[tuple[str, str, list[str]]]) -> dict[str, dict]:
    env = dict(subprocess_env(), OMP_NUM_THREADS="1")
    run = subprocess.run([sys.executable, "-m", "tests.attack_driver", json.dumps(batch)], cwd=REPO_ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".filler"}


def _failures(results: dict[str, dict], expected: dict[str, int]) -> list[str]:
    bad = []
    for name, result in results.items():
        if result["rc"] != expected[name] or "Traceback" in result["stderr"]:
            bad.append(f"{name}: exit {result['rc']} (expected {expected[name]}): {result['stderr'][-1500:]}")
    return bad


def _plant_user_files(out: Path, cmds: dict[str, tuple[str, list[str], str]]) -> None:
    """Put a user's file or folder exactly where each command would write its own output."""
    for _, _, target in cmds.values():
        path = out / target
        if target.endswith((".jsonl", ".json", ".txt")):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(FOREIGN)
        else:
            path.mkdir(parents=True)
            (path / "notes.txt").write_bytes(FOREIGN)
            (path / "firmware.bin").write_bytes(b"\x7fELF" + FOREIGN)


@pytest.fixture(scope="module")
def attacked(world, tmp_path_factory):
    """Every command against every output folder, in one driver run: state -> (out, before, results, after)."""
    root = tmp_path_factory.mktemp("attacks")
    states = ["user-files"] + (["read-only", "full"] if mount_skip_reason() is None else [])
    with contextlib.ExitStack() as stack:
        outs, batch = {}, []
        for state in states:
            if state == "user-files":
                out = root / "user-files"
                _plant_user_files(out, commands(world, out))
            else:
                out = stack.enter_context(small_tmpfs(root / state, state, keep=USER_FILE))
            outs[state] = (out, _files(out))
            batch += [(f"{state}:{name}", module, argv) for name, (module, argv, _) in commands(world, out).items()]
        results = _drive(batch)
        yield {state: (out, before, {name.split(":", 1)[1]: r for name, r in results.items()
                                     if name.startswith(state + ":")}, _files(out))
               for state, (out, before) in outs.items()}


@pytest.mark.parametrize("state", ["read-only", "full"])
def test_every_command_on_a_read_only_or_full_output_folder(attacked, state):
    if state not in attacked:
        pytest.skip(mount_skip_reason())
    out, before, results, after = attacked[state]
    failures = _failures(results, {name: 2 for name in results})
    assert {k: after.get(k) for k in before} == before == USER_FILE  # the user's file, intact
    assert not failures, "\n".join(failures)
    assert sorted(set(after) - set(before)) == [], f"{state}: files left behind"
    wanted = "read-only" if state == "read-only" else "no space left"
    unnamed = []
    for name, result in results.items():  # the last line names the problem and the path, not a traceback
        last = result["stderr"].strip().splitlines()[-1]
        if wanted not in last.lower() or str(out) not in last:
            unnamed.append(f"{name}: {last}")
    assert not unnamed, "\n".join(unnamed)


def test_every_command_refuses_an_output_that_holds_user_files(attacked, world):
    out, before, results, after = attacked["user-files"]
    targets = {name: str(out / target) for name, (_, _, target) in commands(world, out).items()}
    # preprocess writes PREFIX_* files into the folder (named after the prefix, never the user's): it runs
    failures = _failures(results, {name: 0 if name == "preprocess" else 2 for name in results})
    assert not failures, "\n".join(failures)
    assert {k: after.get(k) for k in before} == before, "a user file changed"
    assert all(k.startswith("data/") for k in set(after) - set(before)), sorted(set(after) - set(before))
    for name, result in results.items():
        if name != "preprocess":
            last = result["stderr"].strip().splitlines()[-1]
            assert "error" in last and targets[name] in last, f"{name}: {result['stderr']}"  # names the output


def test_ctrl_c_during_finetune_is_one_line_and_exit_130(world, tmp_path):
    save = tmp_path / "run"
    argv = run_overrides(world, world / "base", save, train_iters=10000, save_interval=10000, eval_interval=10000)
    proc = subprocess.Popen([sys.executable, "-m", "training.finetune", *argv], cwd=REPO_ROOT,
                            env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not (save / "metrics.jsonl").exists() or not (save / "metrics.jsonl").read_text().strip():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "training did not start"
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("finetune: interrupted; "), err[-3000:]
    assert not list(save.rglob("*.tmp-*"))


INTERRUPT_REMOVAL = """
import os, shutil, signal, sys
import guardrails.atomic_folder as folder
real = shutil.rmtree
def rmtree(path, *args, **kwargs):
    if ".old-" in os.path.basename(path) and os.path.exists(path):  # Ctrl-C as the replaced folder is removed
        os.kill(os.getpid(), signal.SIGINT)
    return real(path, *args, **kwargs)
folder.shutil.rmtree = rmtree
from guardrails.command_errors import run_command
from conversion.megatron_to_hf import main
raise SystemExit(run_command(main, sys.argv[1:]))
"""


def test_ctrl_c_while_megatron_to_hf_removes_the_old_folder_and_the_leftover_is_cleaned(world, tmp_path):
    from conversion.megatron_to_hf import main

    out = tmp_path / "hf"
    argv = ["--megatron", str(world / "base"), "--out", str(out), "--tokenizer", str(TOKENIZER), "--no-progress"]
    assert main(argv) == 0
    run = subprocess.run([sys.executable, "-c", INTERRUPT_REMOVAL, *argv], cwd=REPO_ROOT, env=subprocess_env(),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 130 and "Traceback" not in run.stderr, run.stderr
    assert run.stderr.strip().splitlines()[-1] == f"megatron_to_hf: interrupted; {out} is complete", run.stderr
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".hf.codeft.old-")]
    assert leftovers and (out / "config.json").is_file()  # the new folder is in place, the old one set aside
    assert main(argv) == 0  # a later run (another process: the interrupted one is gone)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]  # the dead run's leftover is gone
