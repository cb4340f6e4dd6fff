"""The same wall when the harness is an ordinary user: no cgroup to write, yet every attack still fails.

The test copies the sandbox's modules (standard library only) into a folder every user may read and runs them
with the system interpreter as ``nobody`` (as root: the suite's own user may live under a root-only folder) or
as the current user (when the suite does not run as root). Nothing there can write a cgroup, so the results
say which limits held (rlimits, tmpfs size, seccomp); memfd stays refused, the forgeries still fail, the host's
root-only canary and Unix socket stay out of reach. Each attack runs bare and inside the harness prelude that the
real commands wrap every Python program in (``evaluation.python_programs.harness_wrapped``); the command itself
(``python -m evaluation humaneval``, with torch in the project's venv) is not run as ``nobody``: the venv may live
under a folder only root can read, which is exactly why the sandbox runs programs with the system interpreter.
"""
import json
import os
import secrets
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from evaluation.python_programs import harness_wrapped
from tests.conftest import REPO_ROOT
from tests.sandbox_fixtures import process_limit_program
from tests.test_sandbox_forgery import ATTACKS, CURRENT_FRAMES, DRIVER_REACH, SETTRACE_JUMP, WRONG

SYSTEM_PYTHON = "/usr/bin/python3"
NOBODY = 65534
RUNNER = """
import json, sys
from evaluation.sandbox import Sandbox
from evaluation.sandbox_argv import ArgvProgram, Phase
from evaluation.sandbox_limits import SandboxLimits
programs, canary, socket_path = json.loads(sys.stdin.read())
box = Sandbox(SandboxLimits(timeout_s=3.0, memory_bytes=256 << 20))
report = {name: box.run(source).result for name, source in programs.items()}
report["native exit 3"] = box.run_argv(ArgvProgram(phases=(Phase("run", ("/bin/sh", "-c", "exit 3"), 5),))).reason
report["in_force"] = box.in_force
print(json.dumps(report))
"""


def programs(canary: str, socket_path: str) -> dict[str, str]:
    return {
        "right": "assert sorted([3, 1, 2]) == [1, 2, 3]\n",
        "wrong": WRONG,
        "current frames": CURRENT_FRAMES + WRONG,
        "settrace jump": SETTRACE_JUMP,
        "driver reach": DRIVER_REACH + WRONG,
        "early exit": "import os\nos._exit(0)\n" + WRONG,
        "memfd": "import os\nos.memfd_create('x')\n",
        "unix socket": f"import socket\nsocket.socket(socket.AF_UNIX).connect({socket_path!r})\n",
        "canary": f"raise AssertionError(open({canary!r}).read())\n",
        "proc sys": "open('/proc/sys/vm/swappiness', 'w').write('1')\n",
        "processes": process_limit_program(16, 100),
        "tmpfs": "import os\nfor i in range(100):\n    open(f'f{i}', 'wb').write(os.urandom(8 << 20))\n",
        "uid": "import os\nassert os.getuid() == 65534 and os.listdir('.') == []\n",
        "shadow": "raise AssertionError(open('/etc/shadow').read())\n",
        **{f"attack {name}": attack + WRONG for name, (attack, _) in ATTACKS.items()},
        **{f"harness {name}": harness_wrapped(attack + WRONG) for name, (attack, _) in ATTACKS.items()},
    }


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.skip(f"{SYSTEM_PYTHON} is needed to run the sandbox as another user")
    folder = Path(tempfile_folder(tmp_path_factory))
    (folder / "evaluation").mkdir()
    for module in ["__init__.py", *(p.name for p in (REPO_ROOT / "evaluation").glob("sandbox*.py"))]:
        shutil.copyfile(REPO_ROOT / "evaluation" / module, folder / "evaluation" / module)
    for path in folder.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    base = Path("/var/tmp") if os.geteuid() == 0 else Path.home()
    private = base / f"codeft-unprivileged-{secrets.token_hex(4)}"
    private.mkdir(mode=0o700)
    secret = f"CANARY-{secrets.token_hex(8)}"
    (private / "secret.txt").write_text(secret)
    (private / "secret.txt").chmod(0o600)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(private / "listener.sock"))
    listener.listen()
    listener.setblocking(False)
    identity = {"user": NOBODY, "group": NOBODY, "extra_groups": []} if os.geteuid() == 0 else {}
    request = json.dumps([programs(str(private / "secret.txt"), str(private / "listener.sock")),
                          str(private / "secret.txt"), str(private / "listener.sock")])
    try:
        done = subprocess.run([SYSTEM_PYTHON, "-s", "-c", RUNNER], input=request, capture_output=True, text=True,
                              cwd=folder, env={"PYTHONPATH": str(folder), "PATH": "/usr/bin:/bin"}, timeout=300,
                              **identity)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing connected
    finally:
        listener.close()
        shutil.rmtree(private)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert secret not in done.stdout
    return result


def tempfile_folder(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("unprivileged")
    for path in (folder, *folder.parents):
        if str(path) in ("/", "/tmp"):
            break
        path.chmod(0o755)  # pytest's temporary folders are private; the other user must read this one
    return str(folder)


def test_runs_as_an_unprivileged_user_without_a_cgroup(report):
    assert report["in_force"]["uid"] != 0 and report["in_force"]["cgroup"] == "no writable cgroup"
    assert report["in_force"]["memory"].startswith("RLIMIT_AS per process and the tmpfs size only")
    assert report["in_force"]["processes"] == "RLIMIT_NPROC" and "libseccomp" in report["in_force"]["seccomp"]
    assert report["right"] == "passed" and report["uid"] == "passed"


def test_every_attack_still_fails(report):
    assert report["wrong"] == "failed: AssertionError: wrong answer"
    assert report["current frames"] == "failed: PermissionError: sandbox: sys._current_frames is refused"
    assert report["settrace jump"] == "failed: PermissionError: sandbox: sys.settrace is refused"
    assert report["driver reach"] in ("failed: sandbox: sys._getframe is refused",  # CPython 3.11
                                      "failed: AssertionError: the driver's modules are not visible from here")
    assert report["early exit"] == "failed: exited before the tests finished"
    for name, (_, message) in ATTACKS.items():  # tests/test_sandbox_forgery.py's attacks, run as this user
        assert report[f"attack {name}"].startswith("failed: "), (name, report[f"attack {name}"])
        expected = (message or "wrong answer",) if not isinstance(message, tuple) else message
        if not name.endswith("(3.12+)"):
            assert any(text in report[f"attack {name}"] for text in expected), (name, report[f"attack {name}"])
        assert report[f"harness {name}"].startswith("failed: "), (name, report[f"harness {name}"])  # as commands run


def test_the_host_stays_out_of_reach(report):
    assert report["memfd"] == "failed: PermissionError: [Errno 1] Operation not permitted"
    assert report["unix socket"] == "failed: PermissionError: [Errno 1] Operation not permitted"
    assert report["canary"].startswith("failed: FileNotFoundError")
    assert report["shadow"] == "failed: FileNotFoundError: [Errno 2] No such file or directory: '/etc/shadow'"
    assert report["proc sys"].startswith("failed: PermissionError: sandbox: /proc/sys/vm/swappiness")
    assert report["native exit 3"] == "phase run: exit status 3"


def test_limits_without_a_cgroup(report):
    assert report["processes"] == "passed"  # exactly 16 processes: RLIMIT_NPROC in the sandbox's namespace
    assert report["tmpfs"].startswith("failed: OSError: [Errno 28] No space left on device"), report["tmpfs"]
