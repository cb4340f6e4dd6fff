"""Hostile Go and Rust completions are contained like Python ones: compiled and run in the sandbox, host untouched."""
import json
import shutil
import socket
import threading
import uuid
from pathlib import Path

import pytest

from evaluation import commands
from evaluation.toolchains import ToolchainMissing, shared_build

PROBLEMS = Path(__file__).parent / "fixtures" / "eval_problems"


def toolchain(language):
    try:
        shared_build((language,))
    except ToolchainMissing as exc:
        pytest.skip(str(exc))


def score(tmp_path, language, completions, timeout="3", problems=None):
    samples = tmp_path / "s.jsonl"
    first = "Go/0" if language == "go" else "Rust/0"
    samples.write_text("".join(json.dumps({"task_id": first, "completion": c}) + "\n" for c in completions))
    out = tmp_path / "r.json"
    problems = problems or PROBLEMS / f"{language}.jsonl"
    assert commands.main(["humaneval", "--language", language, "--problems", str(problems),
                          "--samples", str(samples), "--out", str(out), "--k", "1", "--timeout", timeout,
                          "--no-progress", "--workers", "2"]) == 0
    return [r["result"] for r in json.loads(out.read_text())["results"]]


@pytest.fixture
def host_folder():
    folder = Path("/var/tmp") / f"codeft-attack-{uuid.uuid4().hex}"  # outside the sandbox's private /tmp
    folder.mkdir(mode=0o777)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_go_loops_memory_and_goroutine_bombs_fail(tmp_path):
    toolchain("go")
    results = score(tmp_path, "go", [
        "    for {\n    }\n}\n",
        "    big := make([]int64, 1<<33)\n    return int(big[len(big)-1]) + len(xs)\n}\n",
        "    for i := 0; i < 1<<20; i++ {\n        go func() {\n            for {\n            }\n        }()\n    }\n"
        "    return 0\n}\n",
        "    time.Sleep(time.Hour)\n    return 0\n}\n"])
    assert results[0] == "timed out" and results[3] == "timed out"
    assert all(r != "passed" for r in results), results


@pytest.fixture
def listener():
    """A TCP listener on the host's loopback, recording whatever reaches it while the test runs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.2)
    received, stop = [], threading.Event()

    def accept():
        while not stop.is_set():
            try:
                connection, _ = server.accept()
                received.append(connection.recv(100))
                connection.close()
            except OSError:
                pass

    thread = threading.Thread(target=accept)
    thread.start()
    yield server.getsockname()[1], received
    stop.set()
    thread.join()
    server.close()


# A problem whose test setup imports os, net and os/exec (HumanEval-X's own Go problems import none of them, so a
# completion could not even name them): what a Go program that can use them does, the sandbox must contain
HOSTILE_GO = {"task_id": "Go/0", "prompt": "// Hostile returns x.\nfunc Hostile(x int) int {\n", "import": "",
              "declaration": "\nfunc Hostile(x int) int {\n", "canonical_solution": "    return x\n}\n",
              "test_setup": 'package main\n\nimport (\n    "net"\n    "os"\n    "os/exec"\n    "testing"\n'
                            '    "github.com/stretchr/testify/assert"\n)\n\nvar _, _, _ = net.Dial, os.WriteFile, exec.Command\n',
              "test": "func TestHostile(t *testing.T) {\n    assert := assert.New(t)\n    assert.Equal(3, Hostile(3))\n}\n"}


def test_go_cannot_write_outside_reach_the_network_or_spawn_onto_the_host(tmp_path, host_folder, listener):
    toolchain("go")
    port, received = listener
    problems = tmp_path / "hostile_go.jsonl"
    problems.write_text(json.dumps(HOSTILE_GO) + "\n")
    target = host_folder / "written"
    results = score(tmp_path, "go", [
        "    return x\n}\n",  # the problem itself builds and passes: the failures below are the sandbox's doing
        f'    if err := os.WriteFile("{target}", []byte("x"), 0o644); err != nil {{\n        panic(err)\n    }}\n'
        "    return x\n}\n",
        f'    c, err := net.Dial("tcp", "127.0.0.1:{port}")\n    if err != nil {{\n        panic(err)\n    }}\n'
        '    c.Write([]byte("leak"))\n    return x\n}\n',
        f'    if err := exec.Command("/bin/sh", "-c", "touch {target}").Run(); err != nil {{\n        panic(err)\n'
        "    }\n    return x\n}\n"], problems=problems)
    assert results[0] == "passed", results
    assert all(r.startswith("failed") and "compile" not in r for r in results[1:]), results
    assert not target.exists() and received == []


def test_rust_cannot_write_outside_reach_the_network_or_spawn_onto_the_host(tmp_path, host_folder, listener):
    toolchain("rust")
    port, received = listener
    target = host_folder / "written"
    results = score(tmp_path, "rust", [
        f'    std::fs::write("{target}", "x").unwrap();\n    0\n}}\n',
        "    use std::io::Write;\n"
        f'    let mut s = std::net::TcpStream::connect("127.0.0.1:{port}").unwrap();\n'
        '    s.write_all(b"leak").unwrap();\n    0\n}\n',
        f'    std::process::Command::new("/bin/sh").arg("-c").arg("touch {target}").status().unwrap();\n'
        "    xs.iter().map(|x| x * x).sum()\n}\n",
        "    loop {}\n}\n"])
    assert results[0].startswith("failed") and results[1].startswith("failed") and results[3] == "timed out"
    assert not target.exists() and received == []


def test_rust_cannot_read_host_files_at_compile_or_run_time_nor_fake_a_pass_by_exiting(tmp_path, host_folder):
    toolchain("rust")
    canary = host_folder / "canary"
    canary.write_text("secret-canary-7d1f")
    canary.chmod(0o600)
    results = score(tmp_path, "rust", [
        f'    let s = include_str!("{canary}");\n    s.len() as i32\n}}\n',  # the compiler reads it
        f'    let s = std::fs::read_to_string("{canary}").unwrap();\n    s.len() as i32\n}}\n',
        '    let s = include_str!("/etc/shadow");\n    s.len() as i32\n}\n',
        "    std::process::exit(0);\n}\n",  # exit status 0 before the tests ran: not a pass
        '    for _ in 0..200000 { println!("a line of output that is not short"); }\n'
        "    xs.iter().map(|x| x * x).sum()\n}\n"])  # printing megabytes never fails a correct program
    assert results[0].startswith("failed: compile error") and results[2].startswith("failed: compile error")
    assert results[1] == "failed: panicked" and results[3] == "failed: exited before the tests finished"
    assert results[4] == "passed"
    assert "secret-canary" not in (tmp_path / "r.json").read_text()


def test_a_killed_run_phase_is_named_by_its_signal_without_running_anything():
    """The judge's own phrases (no toolchain needed): a signal, a shell's 128+N status, a number no signal has;
    SIGABRT (134) is a Rust panic's abort, judged by its output, not as a kill."""
    from evaluation.sandbox_argv import ArgvResult, PhaseOutcome
    from evaluation.toolchain_jobs import judge

    def run_phase(status, code, output=b""):
        compiled = PhaseOutcome("compile", "exit", 0, 0.1)
        return judge("rust", ArgvResult("failed", "", (compiled, PhaseOutcome("run", status, code, 0.1)), output, 0.2))

    assert run_phase("signal", 9).reason == "killed by SIGKILL"
    assert run_phase("exit", 128 + 11).reason == "killed by SIGSEGV"
    assert run_phase("exit", 128 + 99).reason == "killed by signal 99"
    assert run_phase("exit", 128 + 6, b"thread 'main' panicked at src/main.rs").reason == "panicked"
