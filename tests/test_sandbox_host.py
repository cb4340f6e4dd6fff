"""The host stays untouched: hostile programs see no host file or socket, write no kernel setting, hold no host memory.

Canaries: a file only its owner may read, outside /tmp (and one in the test's own folder); a listening Unix
socket outside /tmp and an abstract one; a TCP listener on the host's loopback. The real command
(``python -m evaluation humaneval --samples``) scores hostile completions: all fail, none of the canaries or
host secrets reach ``results.json``, and no listener hears a byte.
"""
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from evaluation.sandbox import Sandbox
from evaluation.sandbox_argv import ArgvProgram, Phase
from evaluation.sandbox_limits import SandboxLimits
from tests.conftest import REPO_ROOT
from tests.sandbox_fixtures import LIMITS, make_box, run

VISIBLE_TOP = {"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc", "dev", "tmp"}


@pytest.fixture(scope="module")
def box():
    return make_box()


@pytest.fixture(scope="module")
def canaries(tmp_path_factory):
    """A private folder outside /tmp with a canary file (mode 0600) and a listening Unix socket; an abstract
    socket; a loopback TCP listener. Yields what the programs aim at; afterwards nothing may have connected."""
    base = Path("/var/tmp") if os.access("/var/tmp", os.W_OK) else Path.home()
    folder = Path(os.path.realpath(base)) / f"codeft-canary-{secrets.token_hex(4)}"
    folder.mkdir(mode=0o700)
    secret = f"CANARY-{secrets.token_hex(8)}"
    canary = folder / "secret.txt"
    canary.write_text(secret)
    canary.chmod(0o600)
    local = tmp_path_factory.mktemp("canary") / "secret.txt"
    local.write_text(secret)
    listeners = {"unix": socket.socket(socket.AF_UNIX), "abstract": socket.socket(socket.AF_UNIX),
                 "tcp": socket.create_server(("127.0.0.1", 0))}
    listeners["unix"].bind(str(folder / "listener.sock"))
    abstract = f"\0codeft-canary-{secrets.token_hex(4)}"
    listeners["abstract"].bind(abstract)
    for listener in listeners.values():
        listener.listen()
        listener.setblocking(False)
    yield {"secret": secret, "canary": str(canary), "local": str(local), "socket": str(folder / "listener.sock"),
           "abstract": abstract, "port": listeners["tcp"].getsockname()[1]}
    for name, listener in listeners.items():
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing ever connected
        listener.close()
    shutil.rmtree(folder)


def test_only_the_system_folders_are_visible(box):
    result = run(box, f"""
        import os
        top = set(os.listdir("/"))
        assert top <= {VISIBLE_TOP!r}, top
        assert set(os.listdir("/etc")) <= {{"ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime",
                                           "nsswitch.conf", "passwd", "group"}}, os.listdir("/etc")
        for hidden in ("/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/etc/ssh", "/root", "/home", "/var", "/run",
                       "/srv", "/mnt", "/media", "/opt", "/sys", "/proc", {str(REPO_ROOT)!r}):
            assert not os.path.exists(hidden), hidden
        assert "nobody" in open("/etc/passwd").read() and "root:x:0" in open("/etc/passwd").read()
        assert len(open("/etc/passwd").read().splitlines()) == 2
        """)
    assert result.result == "passed", result


def test_host_canaries_stay_out_of_reach(box, canaries):
    for source in (f"open({canaries['canary']!r}).read()", f"open({canaries['local']!r}).read()",
                   "open('/etc/shadow').read()"):
        result = run(box, f"raise AssertionError({source})\n")
        assert result.status == "failed" and "FileNotFoundError" in result.reason, result
        assert canaries["secret"] not in result.reason


def test_no_socket_of_any_family_reaches_the_host(box, canaries):
    attempts = {
        "unix path": f"s = socket.socket(socket.AF_UNIX)\ns.connect({canaries['socket']!r})",
        "unix abstract": f"s = socket.socket(socket.AF_UNIX)\ns.connect({canaries['abstract']!r})",
        "unix pair": "socket.socketpair()",
        "tcp": f"socket.create_connection(('127.0.0.1', {canaries['port']}), timeout=1)",
        "udp": "socket.socket(socket.AF_INET, socket.SOCK_DGRAM)",
        "netlink": "socket.socket(socket.AF_NETLINK, socket.SOCK_RAW)",
        "dns": "socket.getaddrinfo('pypi.org', 443)",
    }
    for name, attempt in attempts.items():
        result = run(box, f"import socket\n{attempt}\nraise SystemExit('connected')\n")
        assert result.status == "failed" and ("PermissionError" in result.reason or "gaierror" in result.reason), (
            name, result)


def test_memfd_and_kernel_settings_are_refused(box):
    assert run(box, "import os\nos.memfd_create('hidden')\n").result.startswith(
        "failed: PermissionError: [Errno 1] Operation not permitted")
    for path in ("/proc/sys/vm/swappiness", "/proc/sys/kernel/core_pattern", "/proc/sysrq-trigger"):
        result = run(box, f"open({path!r}, 'w').write('1')\n")
        assert result.status == "failed" and "not readable here" in result.reason, result


def test_proc_for_native_programs_is_the_sandboxes_own_and_read_only(box):
    """A native toolchain may ask for /proc: /proc/sys stays unwritable (the sandbox user is not root)."""
    before = {p: Path(p).read_text() for p in ("/proc/sys/vm/swappiness", "/proc/sys/kernel/core_pattern")}
    script = ("test -e /proc/self/exe || exit 10; for f in /proc/sys/vm/swappiness /proc/sys/kernel/core_pattern "
              "/proc/sysrq-trigger; do if (echo 1 > $f) 2>/dev/null; then exit 11; fi; done; "
              "test \"$(ls /proc | grep -c '^[0-9]')\" -lt 10 || exit 12")
    result = box.run_argv(ArgvProgram(phases=(Phase("probe", ("/bin/sh", "-c", script), 5),), proc=True))
    assert result.status == "passed", (result.reason, result.output)
    assert {p: Path(p).read_text() for p in before} == before


def test_memory_beyond_the_cgroup_limit_fails(tmp_path):
    """tmpfs pages are charged to the sandbox's memory cgroup: with a tmpfs larger than the memory limit, filling
    it kills the program (RLIMIT_AS alone would let it hold the pages)."""
    limits = SandboxLimits(timeout_s=10.0, memory_bytes=96 << 20, tmpfs_bytes=1 << 30)
    box = Sandbox(limits)
    if not box.in_force["memory"].startswith("memory cgroup"):
        pytest.skip(f"no writable memory cgroup here ({box.in_force['cgroup']}): tested unprivileged elsewhere")
    result = box.run("import os\nfor i in range(30):\n    open(f'f{i}', 'wb').write(os.urandom(10 << 20))\n")
    assert result.result == "failed: killed by SIGKILL (memory limit)", result
    below = "import os\nfor i in range(4):\n    open(f'f{i}', 'wb').write(os.urandom(10 << 20))\n"
    assert box.run(below).result == "passed"


def test_the_memory_limit_holds_for_all_processes_of_one_sample_together():
    """Four processes of 40 MiB each: every one is within its own RLIMIT_AS (96 MiB), together they are beyond the
    sample's 96 MiB memory cgroup, which kills some of them (SIGKILL); with 512 MiB all four live."""
    child = "import time; b = b'x' * (40 << 20); time.sleep(2)"
    program = (f"import subprocess, sys\nkids = [subprocess.Popen([sys.executable, '-c', {child!r}]) for _ in range(4)]\n"
               "codes = [k.wait() for k in kids]\nassert codes.count(0) < 4 and -9 in codes, codes\n")
    small = Sandbox(SandboxLimits(timeout_s=15.0, memory_bytes=96 << 20))
    if not small.in_force["memory"].startswith("memory cgroup"):
        pytest.skip(f"no writable memory cgroup here ({small.in_force['cgroup']})")
    assert small.run(program).result == "passed"
    large = Sandbox(SandboxLimits(timeout_s=15.0, memory_bytes=512 << 20)).run(program)
    assert large.result == "failed: AssertionError: [0, 0, 0, 0]", large


def test_pipe_buffers_count_against_the_memory_limit():
    """48 pipes holding 1 MiB each: within the user's pipe allowance (64 MiB), beyond a 40 MiB memory cgroup."""
    pipes = ("import fcntl, os\nheld = []\nfor _ in range(48):\n    r, w = os.pipe()\n"
             "    fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 1 << 20)\n    os.set_blocking(w, False)\n"
             "    os.write(w, b'x' * (1 << 20))\n    held.append((r, w))\n")
    small = Sandbox(SandboxLimits(timeout_s=10.0, memory_bytes=40 << 20))
    if not small.in_force["memory"].startswith("memory cgroup"):
        pytest.skip(f"no writable memory cgroup here ({small.in_force['cgroup']})")
    assert small.run(pipes).result == "failed: killed by SIGKILL (memory limit)"
    assert Sandbox(SandboxLimits(timeout_s=10.0, memory_bytes=256 << 20)).run(pipes).result == "passed"


def test_the_real_command_keeps_secrets_out_of_results(tmp_path, canaries):
    """python -m evaluation humaneval --samples: hostile completions fail, and results.json holds no secret."""
    attacks = [
        f"    raise AssertionError(open({canaries['canary']!r}).read())\n",
        "    raise AssertionError(open('/etc/shadow').read())\n",
        f"    raise AssertionError(open({str(REPO_ROOT / 'README.md')!r}).read())\n",
        f"    import socket\n    s = socket.socket(socket.AF_UNIX)\n    s.connect({canaries['socket']!r})\n",
        "    import os\n    print(os.listdir('/'), dict(os.environ))\n    os._exit(0)\n",
        "    import os\n    os.memfd_create('x')\n",
        "    open('/proc/sys/vm/swappiness', 'w').write('1')\n",
        "    import sys\n    print('\\n' + '0' * 32 + ' passed')\n    sys.exit(0)\n",
    ]
    samples = tmp_path / "samples.jsonl"
    samples.write_text("".join(json.dumps({"task_id": "HumanEval/0", "completion": c}) + "\n" for c in attacks))
    out = tmp_path / "results.json"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, "-m", "evaluation", "humaneval", "--samples", str(samples), "--out",
                           str(out), "--k", "1", "--no-progress", "--workers", "2"], capture_output=True, text=True,
                          env=env, cwd=REPO_ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    results = json.loads(text)
    assert [r["passed"] for r in results["results"]] == [False] * len(attacks)
    assert canaries["secret"] not in text and "root:x:0" not in text and "# codeft" not in text  # README's title
    assert all(len(r["result"]) <= len("failed: ") + 200 for r in results["results"])
    assert results["settings"]["sandbox"]["in_force"]["uid"] != 0
