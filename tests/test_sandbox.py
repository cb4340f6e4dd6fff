"""The sandbox's everyday behaviour: honest programs pass, broken ones fail with a short reason, limits hold.

Hostile programs: tests/test_sandbox_forgery.py (the pass judgement), tests/test_sandbox_host.py (the host),
tests/test_sandbox_unprivileged.py (the same as an ordinary user), tests/test_sandbox_argv.py (native argv).
"""
import copy
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from evaluation import sandbox
from evaluation.humaneval_score import run_checks
from evaluation.sandbox import Sandbox, SandboxUnavailable, exception_reason, sanitise
from evaluation.sandbox_cgroup import find_parents
from evaluation.sandbox_limits import SandboxLimits
from tests.sandbox_fixtures import (LIMITS, compiled_hook, descendants, make_box, process_limit_program, run,
                                    without_hook)


@pytest.fixture(scope="module")
def box():
    return make_box()


def test_a_correct_program_passes_and_a_wrong_one_says_why(box):
    assert run(box, "def add(a, b):\n    return a + b\nassert add(2, 3) == 5\n").result == "passed"
    wrong = run(box, "def add(a, b):\n    return a - b\nassert add(2, 3) == 5, 'add is wrong'\n")
    assert wrong.result == "failed: AssertionError: add is wrong"
    assert run(box, "def f(:\n").result == "failed: SyntaxError: invalid syntax (line 1)"
    assert run(box, "class Mine(Exception):\n    pass\nraise Mine('custom')\n").result == "failed: Mine: custom"
    assert run(box, "assert [] == [1]\n").result == "failed: AssertionError"


def test_the_standard_library_works_as_humaneval_needs_it(box):
    result = run(box, """
        from typing import List, Optional, Tuple
        import math, re, hashlib, collections, random, string, copy, itertools, functools, heapq, fractions
        import statistics, decimal, json, datetime, dataclasses, enum, logging, warnings
        from collections import namedtuple
        Point = namedtuple("Point", "x y")
        assert Point(1, 2).x == 1 and hashlib.md5(b"x").hexdigest().startswith("9dd4")
        logging.getLogger("t").warning("logging finds no caller frame and still works")
        warnings.warn("so does warnings")
        T = __import__("typing").TypeVar("T")
        assert statistics.mean([1, 2, 3]) == 2 and re.sub("a", "b", "aa") == "bb"
        """)
    assert result.result == "passed", result


def test_early_exit_is_not_a_pass(box):
    for source in ("import sys\nsys.exit(0)\nassert False\n", "import os\nos._exit(0)\n", "raise SystemExit\n",
                   "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n", "raise KeyboardInterrupt\n",
                   "import os\nos.abort()\n"):
        result = run(box, source)
        assert result.status == "failed", (source, result)
    assert run(box, "import sys\nsys.exit(0)\n").reason == "exited before the tests finished"
    assert run(box, "import os\nos._exit(0)\n").reason == "exited before the tests finished"
    assert run(box, "import sys\nsys.exit(3)\n").reason == "exited before the tests finished (status 3)"
    assert run(box, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n").reason == "killed by SIGKILL"


def test_infinite_loop_times_out_and_the_sandbox_is_killed(box):
    started = time.monotonic()
    assert run(box, "while True:\n    pass\n").result == "timed out"
    assert time.monotonic() - started < LIMITS.timeout_s + 5
    assert run(box, "import time\ntime.sleep(60)\n").result == "timed out"


def test_memory_bomb_fails(box):
    assert run(box, "x = bytearray(8 << 30)\n").result == "failed: MemoryError"
    grow = run(box, "chunks = []\nwhile True:\n    chunks.append(bytearray(64 << 20))\n")
    assert grow.status == "failed" and "MemoryError" in grow.reason
    # the writable folder is a size-limited tmpfs: filling it fails instead of eating the host's memory
    fill = run(box, "import os\nfor i in range(1000):\n    open(f'f{i}', 'wb').write(os.urandom(8 << 20))\n")
    assert fill.status == "failed" and ("No space left" in fill.reason or "File too large" in fill.reason), fill


def test_process_and_thread_limits_hold_and_nothing_is_left_behind(box):
    counted = box.run(process_limit_program(LIMITS.max_processes, 200) + textwrap.dedent(f"""
        import threading, time
        started = 0
        threading.stack_size(256 << 10)  # address space, not the process limit, would stop 8 MiB stacks first
        try:
            for _ in range(200):
                threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
                started += 1
        except RuntimeError:
            pass
        assert started == {LIMITS.max_processes}, started
        """))
    assert counted.result == "passed", counted
    bomb = run(box, "import subprocess\nwhile True:\n    try:\n        subprocess.Popen(['/bin/sleep', '30'])\n"
                    "    except OSError:\n        pass\n")
    assert bomb.status in ("timed out", "failed")
    assert descendants(os.getpid()) == [os.getpid()]  # no child survives
    assert run(box, "assert 1 + 1 == 2\n").result == "passed"  # and the next program runs normally


def test_the_working_folder_is_private_empty_and_writable(box):
    own = run(box, "import os\nassert os.getcwd() == '/tmp/program' and os.listdir('.') == [], os.listdir('.')\n"
                   "open('notes.txt', 'w').write('kept')\nassert open('notes.txt').read() == 'kept'\n"
                   "assert os.environ['HOME'] == '/tmp/program' and os.getuid() == 65534\n")
    assert own.result == "passed", own
    assert run(box, "import os\nassert os.listdir('.') == [], 'a file of the last program is still here'\n"
               ).result == "passed"


def test_printing_gigabytes_is_cut_off(box):
    started = time.monotonic()
    result = run(box, "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n")
    assert result.result == f"failed: output over {LIMITS.max_output_bytes} bytes"
    assert time.monotonic() - started < 5


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
    parents = find_parents()
    for parent in {parent for parent in (parents.pids, parents.memory) if parent is not None}:
        for orphan in parent.glob(f"codeft-sandbox-{harness.pid}-*"):  # the killed harness could not remove it
            orphan.rmdir()  # empty: its members died with the sandbox


def test_parallel_runs_keep_their_order(box):
    programs = [f"assert {i} % 3 != 0\n" for i in range(9)]
    assert [r.status for r in run_checks(programs, box, workers=3, progress=False)] == [
        "failed" if i % 3 == 0 else "passed" for i in range(9)]


def test_warm_sandboxes_run_one_program_each_and_leave_nothing(box):
    """Started ahead (Sandbox.warm), a sandbox still runs exactly one program: a file or a process one program leaves
    is gone for the next; a sandbox that waited longer than the timeout still gives its program the whole timeout;
    leaving the block ends the sandboxes nobody took, processes and cgroups alike."""
    litter = "import subprocess\nopen('litter.txt', 'w').write('x')\nsubprocess.Popen(['/bin/sleep', '30'])\n"
    clean = "import os\nassert os.listdir('.') == [], os.listdir('.')\n"
    with box.warm(2):
        assert [box.run(p).result for p in (litter, clean, litter, clean)] == ["passed"] * 4
        time.sleep(LIMITS.timeout_s + 0.5)
        assert box.run(f"import time\ntime.sleep({LIMITS.timeout_s - 0.5})\n").result == "passed"
    assert descendants(os.getpid()) == [os.getpid()]
    leftovers = [p for parent in (box._cgroups.pids, box._cgroups.memory) if parent is not None
                 for p in parent.glob(f"codeft-sandbox-{os.getpid()}-*")]
    assert leftovers == []


def test_reasons_are_one_short_line_of_printable_text(box):
    result = run(box, "raise ValueError('a\\nb\\x1b[31m' + 'x' * 5000)\n")
    assert result.status == "failed" and result.reason.startswith("ValueError: a b [31mxxx")
    assert len(result.reason) == 200 and result.reason.endswith("...") and "\n" not in result.reason
    assert exception_reason("<class '__main__.E'>: boom") == "E: boom"
    assert exception_reason("<class 'SystemExit'>: None") == "exited before the tests finished"
    assert sanitise("a\tb\x00c") == "a b c"


def test_limits_in_force_are_reported(box):
    assert box.in_force["uid"] != 0 and "libseccomp" in box.in_force["seccomp"]
    assert box.in_force["interpreter"].startswith(f"{box.python} (Python 3.")
    if os.geteuid() == 0 and box.in_force["cgroup"].startswith("cgroup"):
        assert box.in_force["memory"].startswith("memory cgroup") and box.in_force["processes"].startswith("pids")


def test_interpreter_under_tmp_is_bound_back(tmp_path_factory):
    """A clone under /tmp: its interpreter is hidden by the sandbox's /tmp unless bound back (read-only)."""
    if not os.access("/usr/bin/python3", os.X_OK):
        pytest.skip("needs the system interpreter to build a venv every user may read")
    folder = tmp_path_factory.mktemp("clone")
    for path in (folder, *folder.parents):
        if str(path) in ("/", "/tmp"):
            break
        path.chmod(0o755)  # pytest's temporary folders are private; the sandbox's user must read this one
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--copies", "--without-pip", str(folder / "venv")], check=True)
    python = str(folder / "venv" / "bin" / "python")
    clone_box = Sandbox(LIMITS, python=python)
    assert str(folder / "venv") in " ".join(clone_box._interpreter_binds)
    result = clone_box.run(f"import sys\nassert sys.executable == {python!r}, sys.executable\n")
    assert result.result == "passed", result


def test_refuses_to_run_without_bubblewrap_libseccomp_or_a_readable_interpreter(monkeypatch, tmp_path):
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    with pytest.raises(SandboxUnavailable, match="apt-get install -y bubblewrap"):
        Sandbox(LIMITS)
    monkeypatch.undo()
    import evaluation.sandbox_seccomp as seccomp

    def no_library(*args, **kwargs):
        raise OSError("libseccomp.so.2: cannot open shared object file")

    monkeypatch.setattr(seccomp.ctypes, "CDLL", no_library)
    with pytest.raises(SandboxUnavailable, match="apt-get install -y libseccomp2"):
        Sandbox(LIMITS)
    monkeypatch.undo()
    with pytest.raises(SandboxUnavailable, match="cannot run the sandbox's interpreter"):
        Sandbox(LIMITS, python=str(tmp_path / "no-such-python"))


def test_no_hook_in_the_subinterpreter_means_no_program(box):
    """The driver fails closed: when the hook cannot be installed in the program's interpreter, nothing runs."""
    broken = copy.copy(box)
    in_the_subinterpreter = "not {'_xxsubinterpreters', '_interpreters'} & set(sys.modules)"  # the driver's has one
    broken._hook = compiled_hook(box, f"def install(trusted_roots):\n    import sys\n    if {in_the_subinterpreter}:\n"
                                      "        raise RuntimeError('broken')\n")
    result = broken.run("pass\n")
    assert result.result == "failed: sandbox: no audit hook in the subinterpreter: <class 'RuntimeError'>: broken"


def test_a_sandbox_that_cannot_hold_refuses_to_start(monkeypatch):
    """If the audit hook were not in force (here: a driver that never installs it), nothing would run."""
    real = Sandbox._check_the_wall

    def check_without_the_hook(self):
        self._hook = without_hook(self)
        real(self)

    monkeypatch.setattr(Sandbox, "_check_the_wall", check_without_the_hook)
    with pytest.raises(SandboxUnavailable, match="audit hook is not in force"):
        Sandbox(SandboxLimits(timeout_s=2.0))
