"""Every command killed with SIGKILL or SIGTERM mid-run: none of its processes survives, SIGTERM is one line.

Issue 16 item 16: after ``kill -9`` of ``dataset.preprocess`` its tokenizer workers lived on forever (waiting on a
queue nobody writes), and SIGTERM was not handled like Ctrl-C. Each command runs in its own session
(``start_new_session``) under ``tests/attack_driver.py --markers``, which imports the command, prints ``START``
and runs it; the signal follows as soon as the command has started (for ``dataset.preprocess``, once its workers
exist; for ``evaluation humaneval``, once its sandboxed programs run). Afterwards no process of that session may
be left. SIGTERM: the command ends with exit status 143 and "NAME: terminated (SIGTERM); ..." as its last line,
no traceback, no temporary left; one driver runs all commands in turn, so torch is imported once. SIGKILL: one
driver per command (the kill ends it), all at once.
"""
from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.attack_world import output_flags
from tests.conftest import FORK_FIXTURES, REPO_ROOT
from tests.local_engine_fixtures import subprocess_env

SETTLE_S = 15  # how long a dying process tree may take to go
SPAWNERS = {"preprocess": 2, "evaluation": 1}  # signalled once this many child processes are at work


def _session(sid: int) -> list[int]:
    """Live (not zombie) processes of session ``sid``."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[3]) == sid and fields[0] != "Z":  # state, ppid, pgrp, session
            alive.append(int(entry.name))
    return alive


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _settled(sid: int, keep: int | None = None) -> list[int]:
    deadline = time.monotonic() + SETTLE_S
    while True:
        left = [p for p in _session(sid) if p != keep]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def _commands(w: Path, out: Path, big: Path) -> list[tuple[str, str, list[str]]]:
    """One run of every command (each module once), all writing under ``out``."""
    seen, batch = set(), []
    for name, flag in output_flags(w).items():
        key = (flag.module, name.split(" ")[1] if flag.module in ("dataset.splits", "conversion.verify") else "")
        if key in seen:
            continue
        seen.add(key)
        target = out / name.replace(" ", "_").replace("-", "") / ("x" + flag.suffix if flag.shape == "file" else "o")
        argv = flag.argv(target)
        if flag.module == "dataset.preprocess":  # long enough to be killed with its workers at work
            argv = flag.argv(target, big)
            argv[argv.index("--workers") + 1] = "2"
        if flag.module == "training.finetune":
            argv = [a for a in argv if not a.startswith("training.train_iters=")] + ["training.train_iters=100000"]
        if flag.module == "evaluation.commands":  # programs run in the sandbox, in parallel: children to kill
            argv = ["humaneval", "--canonical", "--out", str(target), "--limit", "40", "--workers", "2",
                    "--no-progress"]
        batch.append((name, flag.module, argv))
    return batch


@pytest.fixture(scope="module")
def big_input(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("big") / "big.jsonl"
    path.write_bytes((FORK_FIXTURES / "sample.jsonl").read_bytes() * 200)
    return path


class _Lines:
    """The lines a driver prints, read by a thread so that waiting for one never blocks on the pipe."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, args=(proc.stdout,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in stream:
            self.queue.put(line.rstrip("\n"))
        self.queue.put(None)

    def next(self, timeout: float = 300) -> str | None:
        return self.queue.get(timeout=timeout)


def _say(proc: subprocess.Popen, line: str = "go") -> None:
    proc.stdin.write(line + "\n")
    proc.stdin.flush()


def _signal_after_start(proc: subprocess.Popen, lines: _Lines, sig: int, name: str, delay: float) -> bool:
    """Wait for ``START name``, let the command run, wait ``delay`` (a pool: for its workers), send ``sig``."""
    if lines.next() != f"START {name}":
        return False
    _say(proc)
    spawns = next((n for key, n in SPAWNERS.items() if name.startswith(key)), 0)
    deadline = time.monotonic() + (20 if spawns else delay)
    while time.monotonic() < deadline and not (spawns and len(_children(proc.pid)) >= spawns):
        time.sleep(0.01)
    proc.send_signal(sig)
    return True


def test_sigterm_ends_every_command_in_one_line_and_leaves_no_process(attack_world, tmp_path, big_input):
    batch = _commands(attack_world, tmp_path / "out", big_input)
    proc = subprocess.Popen([sys.executable, "-m", "tests.attack_driver", json.dumps(batch), "--markers"],
                            cwd=REPO_ROOT, env=dict(subprocess_env(), OMP_NUM_THREADS="1"), start_new_session=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines, survivors = _Lines(proc), {}
    try:
        for name, _, _ in batch:
            assert _signal_after_start(proc, lines, signal.SIGTERM, name, 0.0), proc.stderr.read()[-3000:]
            assert lines.next() == f"END {name}"
            left = _settled(proc.pid, keep=proc.pid)
            if left:
                survivors[name] = left
            _say(proc, "next")
        pending = lines.next()
        _say(proc, "exit")  # the results are in: the driver may exit
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    err = proc.stderr.read()
    assert proc.returncode == 0, err[-3000:]
    assert not survivors, survivors
    results = json.loads(pending)
    bad = []
    for name, module, _ in batch:
        result = results[name]
        last = result["stderr"].strip().splitlines()[-1] if result["stderr"].strip() else ""
        if result["late"]:  # it had ended before the signal came: nothing to check but the processes
            continue
        prog = module.rsplit(".", 1)[-1]
        if result["rc"] != 143 or "Traceback" in result["stderr"] or not last.startswith(f"{prog}: terminated"):
            bad.append(f"{name}: exit {result['rc']}: {result['stderr'][-600:]}")
    assert not bad, "\n".join(bad)
    assert not list((tmp_path / "out").rglob("*.codeft.tmp-*")), "a terminated command left a temporary"
    late = sorted(name for name in results if results[name]["late"])
    assert len(late) <= 2 and not any("preprocess" in name for name in late), late  # caught mid-run, nearly all


def test_sigkill_of_any_command_leaves_no_process(attack_world, tmp_path, big_input):
    batch = _commands(attack_world, tmp_path / "out", big_input)
    env = dict(subprocess_env(), OMP_NUM_THREADS="1")
    procs = {name: subprocess.Popen([sys.executable, "-m", "tests.attack_driver", json.dumps([(name, module, argv)]),
                                     "--markers"], cwd=REPO_ROOT, env=env, start_new_session=True,
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                    text=True)
             for name, module, argv in batch}
    survivors, started = {}, 0
    try:
        for name, proc in procs.items():
            started += _signal_after_start(proc, _Lines(proc), signal.SIGKILL, name, 0.3)
            proc.wait(timeout=120)
            left = _settled(proc.pid)
            if left:
                survivors[name] = left
    finally:
        for proc in procs.values():
            for pid in _session(proc.pid):
                os.kill(pid, signal.SIGKILL)
    assert started == len(batch)
    assert not survivors, survivors
