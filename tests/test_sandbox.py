"""The bubblewrap sandbox: honest programs pass, and each hostile program costs nothing but its own failure."""
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from evaluation import sandbox
from evaluation.humaneval_score import run_checks
from evaluation.pids_cgroup import descendants
from evaluation.sandbox import Sandbox, SandboxLimits, SandboxUnavailable, rebind_under_hidden

LIMITS = SandboxLimits(timeout_s=2.0, memory_bytes=256 << 20, max_output_bytes=64 << 10)


@pytest.fixture(scope="module")
def box():
    return Sandbox(LIMITS)


def run(box, source):
    return box.run(textwrap.dedent(source))


def test_a_correct_program_passes_and_a_wrong_one_says_why(box):
    assert run(box, "def add(a, b):\n    return a + b\nassert add(2, 3) == 5\n").result == "passed"
    wrong = run(box, "def add(a, b):\n    return a - b\nassert add(2, 3) == 5, 'add is wrong'\n")
    assert wrong.result == "failed: AssertionError: add is wrong"
    assert run(box, "def f(:\n").result.startswith("failed: SyntaxError")


def test_early_exit_with_status_zero_is_not_a_pass(box):
    for source in ("import sys\nsys.exit(0)\nassert False\n", "import os\nos._exit(0)\n",
                   "raise SystemExit\n", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n"):
        result = run(box, source)
        assert result.status == "failed", (source, result)
    assert run(box, "import sys\nsys.exit(0)\n").reason == "exited before the tests finished"


def test_infinite_loop_times_out_and_the_sandbox_is_killed(box):
    started = time.monotonic()
    result = run(box, "while True:\n    pass\n")
    assert result.result == "timed out"
    assert time.monotonic() - started < LIMITS.timeout_s + 5
    # a loop that ignores signals and sleeps instead of burning CPU is killed by the wall clock as well
    sleeper = run(box, "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(60)\n")
    assert sleeper.result == "timed out"


def test_memory_bomb_fails_without_touching_the_host(box):
    assert run(box, "x = bytearray(8 << 30)\n").result == "failed: MemoryError"
    grow = run(box, "chunks = []\nwhile True:\n    chunks.append(bytearray(64 << 20))\n")
    assert grow.status == "failed" and "MemoryError" in grow.reason
    # the writable folder is a size-limited tmpfs: filling it fails instead of eating the host's memory
    fill = run(box, "import os\nfor i in range(1000):\n    open(f'f{i}', 'wb').write(os.urandom(8 << 20))\n")
    assert fill.status == "failed" and ("No space left" in fill.reason or "File too large" in fill.reason), fill


def test_fork_bomb_is_capped_and_leaves_nothing_behind(box):
    counted = run(box, """
        import os, time
        n = 0
        for _ in range(200):
            try:
                pid = os.fork()
            except OSError:
                break
            if pid == 0:
                time.sleep(30)
                os._exit(0)
            n += 1
        print("forked", n)
        """)
    assert f"forked {LIMITS.max_processes}" in counted.output, counted
    bomb = run(box, "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n")
    assert bomb.status in ("timed out", "failed")
    assert descendants(os.getpid()) == [os.getpid()]  # no child survives
    assert run(box, "assert 1 + 1 == 2\n").result == "passed"  # and the next program runs normally


def test_writes_outside_the_private_folder_fail(box, tmp_path):
    target = tmp_path / "escaped.txt"
    project = Path(__file__).resolve().parent.parent / "escaped.txt"  # the project folder itself
    outside = [target, "/etc/escaped", "/root/escaped", "/var/tmp/escaped", "/dev/shm/escaped"]
    # A clone under /tmp: inside the sandbox that path names a folder of its own private /tmp (made there to
    # bind the interpreter back), so the write may succeed, but it lands in the sandbox's tmpfs, not here.
    if not project.is_relative_to("/tmp"):
        outside.append(project)
    for path in outside:
        result = run(box, f"open({str(path)!r}, 'w').write('x')\n")
        assert result.status == "failed" and "Error" in result.reason, (path, result)
    run(box, f"open({str(project)!r}, 'w').write('x')\n")
    assert not target.exists() and not project.exists() and not os.path.exists("/etc/escaped")
    own = run(box, "import os\nopen('notes.txt', 'w').write('kept')\nassert open('notes.txt').read() == 'kept'\n"
                   "assert os.getcwd() == '/tmp/program' and os.listdir('.') == ['notes.txt']\n")
    assert own.result == "passed", own  # a private, empty, writable working folder


def test_no_network(box):
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    try:
        result = run(box, f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)\n")
        assert result.status == "failed" and "Connection refused" in result.reason, result
        with pytest.raises(socket.timeout):
            listener.accept()
        dns = run(box, "import socket\nsocket.getaddrinfo('pypi.org', 443)\n")
        assert dns.status == "failed", dns
    finally:
        listener.close()


def test_killing_the_parent_or_the_harness_is_impossible(box):
    me = os.getpid()
    result = run(box, f"""
        import os, signal
        for pid in (os.getppid(), 1, {me}):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError as exc:
                print(pid, type(exc).__name__)
        raise SystemExit(3)
        """)
    assert result.status == "failed"
    assert f"{me} ProcessLookupError" in result.output  # the harness is not even visible
    assert run(box, "pass\n").result == "passed"  # and still here


def test_printing_gigabytes_is_cut_off(box):
    started = time.monotonic()
    result = run(box, "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n")
    assert result.result == f"failed: output over {LIMITS.max_output_bytes} bytes"
    assert len(result.output) <= LIMITS.max_output_bytes and time.monotonic() - started < 5


def test_clean_environment(box, monkeypatch):
    monkeypatch.setenv("CODEFT_SECRET", "hunter2")
    result = run(box, "import os\nassert 'CODEFT_SECRET' not in os.environ, 'leaked'\n"
                      "assert set(os.environ) <= {'PATH', 'HOME', 'TMPDIR', 'LANG', 'PWD', 'LC_CTYPE'}, os.environ\n")
    assert result.result == "passed", result


def test_dies_with_its_parent():
    harness = subprocess.Popen([sys.executable, "-c", "from evaluation.sandbox import Sandbox, SandboxLimits\n"
                                "Sandbox(SandboxLimits(timeout_s=60)).run('import time\\ntime.sleep(60)\\n')"])
    try:
        deadline = time.monotonic() + 30
        while len(descendants(harness.pid)) < 4 and time.monotonic() < deadline:  # harness, bwrap x2, driver
            time.sleep(0.05)
        sandboxed = descendants(harness.pid)[1:]
        assert len(sandboxed) >= 3, sandboxed
    finally:
        harness.send_signal(signal.SIGKILL)
        harness.wait()
    deadline = time.monotonic() + 10
    while any(os.path.exists(f"/proc/{pid}") for pid in sandboxed) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(os.path.exists(f"/proc/{pid}") for pid in sandboxed)


def test_parallel_runs_keep_their_order(box):
    programs = [f"assert {i} % 3 != 0\n" for i in range(9)]
    assert [r.status for r in run_checks(programs, box, workers=3, progress=False)] == [
        "failed" if i % 3 == 0 else "passed" for i in range(9)]


def test_interpreter_under_tmp_is_bound_back(tmp_path):
    """A clone under /tmp: its venv (here a copied interpreter) is hidden by the tmpfs unless bound back."""
    assert str(tmp_path).startswith("/tmp/")
    subprocess.run([sys.executable, "-m", "venv", "--copies", "--without-pip", str(tmp_path / "venv")], check=True)
    python = str(tmp_path / "venv" / "bin" / "python")
    box = Sandbox(LIMITS, python=python)
    assert str(tmp_path / "venv" / "bin") in box.argv
    result = box.run("import sys\nprint(sys.executable)\n")
    assert result.result == "passed" and python in result.output


def test_rebind_under_hidden_keeps_outermost_paths():
    assert rebind_under_hidden(["/usr/bin", "/tmp/a/venv/bin", "/tmp/a/venv", "/tmpx/y", "/tmp/b"]) == [
        "/tmp/a/venv", "/tmp/b"]


def test_refuses_to_run_without_bubblewrap(monkeypatch):
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    with pytest.raises(SandboxUnavailable, match="apt-get install -y bubblewrap"):
        Sandbox(LIMITS)


def test_root_without_a_pids_cgroup_runs_the_sandbox_as_nobody(monkeypatch):
    """Where no pids cgroup is writable, root's sandboxes run as nobody, whom RLIMIT_NPROC binds."""
    if os.geteuid() != 0:
        pytest.skip("only root has the choice")
    def nobody_can_run(python):
        try:
            return subprocess.run([python, "-I", "-S", "-c", "import os"], capture_output=True, user=65534,
                                  group=65534, extra_groups=[]).returncode == 0
        except OSError:
            return False

    readable = [p for p in (os.path.realpath(sys.executable), "/usr/bin/python3", "/usr/local/bin/python3")
                if os.path.exists(p) and nobody_can_run(p)]
    if not readable:
        pytest.skip("no interpreter here that nobody may run")
    monkeypatch.setattr(sandbox, "pids_parent", lambda: None)
    box = Sandbox(LIMITS, python=readable[0])
    assert box.run_as == sandbox.NOBODY and box.cgroup_parent is None
    counted = box.run("import os, time\nn = 0\nfor _ in range(100):\n    try:\n        pid = os.fork()\n"
                      "    except OSError:\n        break\n    if pid == 0:\n        time.sleep(30)\n        os._exit(0)\n"
                      "    n += 1\nprint('forked', n)\n")
    assert f"forked {LIMITS.max_processes}\n" in counted.output, counted
    assert box.run("import os\nassert os.getuid() == 65534\n").result == "passed"
