"""Native programs behind the same wall (Sandbox.run_argv): phases, files, read-only binds, limits, the seccomp filter.

The C programs are compiled with gcc inside the sandbox, in a compile phase, and run in a run phase: that is
also how the next evaluations (Go, Rust) use the primitive. The seccomp checks call each refused syscall
directly (no libc wrapper can hide a difference), from the native ABI and from the i386 and x32 ones.
"""
import errno
import socket

import pytest

from evaluation.sandbox_argv import ArgvProgram, Phase
from evaluation.sandbox_limits import SandboxLimits
from tests.sandbox_fixtures import make_box, need_gcc

SYSCALLS = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <unistd.h>
#define TRY(name, ...) do { errno = 0; long r = syscall(__VA_ARGS__); \
    printf("%s %ld %d\n", name, r, r < 0 ? errno : 0); } while (0)
int main(void) {
    int fds[2];
    TRY("memfd_create", SYS_memfd_create, "x", 0);
    TRY("ptrace", SYS_ptrace, 0 /* PTRACE_TRACEME */, 0, 0, 0);
    TRY("process_vm_readv", SYS_process_vm_readv, 1, 0, 0, 0, 0, 0);
    TRY("process_vm_writev", SYS_process_vm_writev, 1, 0, 0, 0, 0, 0);
    TRY("keyctl", SYS_keyctl, 0, 0, 0, 0, 0);
    TRY("add_key", SYS_add_key, "user", "k", "v", 1, -2);
    TRY("request_key", SYS_request_key, "user", "k", 0, 0);
    TRY("io_uring_setup", SYS_io_uring_setup, 1, 0);
    TRY("bpf", SYS_bpf, 0, 0, 0);
    TRY("perf_event_open", SYS_perf_event_open, 0, 0, -1, -1, 0);
    TRY("userfaultfd", SYS_userfaultfd, 0);
    TRY("unshare", SYS_unshare, 0x10000000 /* CLONE_NEWUSER */);
    TRY("socket unix", SYS_socket, AF_UNIX, SOCK_STREAM, 0);
    TRY("socket unix high bits", SYS_socket, (1L << 32) | AF_UNIX, SOCK_STREAM, 0);
    TRY("socket inet", SYS_socket, AF_INET, SOCK_STREAM, 0);
    TRY("socketpair", SYS_socketpair, AF_UNIX, SOCK_STREAM, 0, fds);
    TRY("getpid", SYS_getpid);
    return 0;
}
"""
I386 = r"""
int main(void) {  /* memfd_create through the i386 ABI (int 0x80, number 356): the filter admits no other ABI */
    long ret;
    __asm__ volatile ("int $0x80" : "=a"(ret) : "a"(356L), "b"(0L), "c"(0L) : "memory");
    return 0;
}
"""
X32 = r"""
#include <sys/syscall.h>
#include <unistd.h>
int main(void) { syscall(0x40000000L | SYS_memfd_create, "x", 0); return 0; }  /* the x32 ABI */
"""


@pytest.fixture(scope="module")
def box():
    return make_box()


def c_program(source: str, run_timeout: float = 3.0) -> ArgvProgram:
    return ArgvProgram(phases=(Phase("compile", ("gcc", "-O0", "-o", "main", "main.c"), 60),
                               Phase("run", ("./main",), run_timeout)), files={"main.c": source.encode()})


def test_exit_status_and_output_of_a_shell_command(box):
    result = box.run_argv(ArgvProgram(phases=(Phase("run", ("/bin/sh", "-c", "echo out; echo err >&2; exit 3"), 5),)))
    assert (result.status, result.reason) == ("failed", "phase run: exit status 3")
    assert [(p.name, p.status, p.code) for p in result.phases] == [("run", "exit", 3)]
    assert sorted(result.output.splitlines()) == [b"err", b"out"]  # the driver's own record lines are taken out
    assert box.run_argv(ArgvProgram(phases=(Phase("run", ("/bin/true",), 5),))).status == "passed"


def test_compile_then_run_a_c_program(box):
    need_gcc()
    result = box.run_argv(c_program('#include <stdio.h>\nint main(void) { puts("hello from C"); return 0; }\n'))
    assert result.status == "passed", (result.reason, result.output)
    assert [p.name for p in result.phases] == ["compile", "run"] and b"hello from C\n" in result.output
    broken = box.run_argv(c_program("int main(void) { return undefined; }\n"))
    assert broken.reason == "phase compile: exit status 1" and [p.name for p in broken.phases] == ["compile"]


def test_each_phase_has_its_own_time_limit_and_leftovers_are_killed(box):
    live_sleepers = ("import os\nlive = [p for p in os.listdir('/proc') if p.isdigit()\n"
                     "        and open(f'/proc/{p}/comm').read().strip() == 'sleep'\n"
                     "        and open(f'/proc/{p}/stat').read().rsplit(')', 1)[1].split()[0] != 'Z']  # not a zombie\n"
                     "raise SystemExit(7 if live else 0)\n")
    program = ArgvProgram(phases=(Phase("setup", ("/bin/sh", "-c", "sleep 30 & exit 0"), 5),
                                  Phase("look", ("/usr/bin/python3", "-I", "-c", live_sleepers), 5),
                                  Phase("run", ("/bin/sleep", "30"), 1)), proc=True)
    result = box.run_argv(program)
    assert (result.status, result.reason) == ("timed out", "phase run: over 1s")
    assert result.phases[0].seconds < 2 and 0.9 < result.phases[2].seconds < 3
    missing = box.run_argv(ArgvProgram(phases=(Phase("run", ("/no/such/program",), 5),)))
    assert missing.reason == "phase run: exit status 127"


def test_files_binds_and_environment(box, tmp_path_factory):
    shared = tmp_path_factory.mktemp("toolchain")
    for path in (shared, *shared.parents):
        if str(path) in ("/", "/tmp"):
            break
        path.chmod(0o755)  # readable by the sandbox's user, like a toolchain folder
    (shared / "tool.txt").write_text("from the host\n")
    (shared / "tool.txt").chmod(0o644)
    script = ('set -e; test "$(cat data/input.txt)" = "given"; ./run.sh; test "$(cat ' + str(shared / "tool.txt") +
              ')" = "from the host"; if touch ' + str(shared / "new") + ' 2>/dev/null; then exit 9; fi; '
              'test "$GOCACHE" = /tmp/cache; test ! -e /proc/self')
    result = box.run_argv(ArgvProgram(
        phases=(Phase("check", ("/bin/sh", "-c", script), 5),),
        files={"data/input.txt": b"given", "run.sh": b"#!/bin/sh\nexit 0\n"}, executable=frozenset({"run.sh"}),
        ro_binds=(str(shared),), env={"GOCACHE": "/tmp/cache"}))
    assert result.status == "passed", (result.reason, result.output)
    assert not (shared / "new").exists()


def test_bad_requests_are_refused_with_the_field(box):
    for program, field in ((ArgvProgram(phases=()), "phases"),
                           (ArgvProgram(phases=(Phase("bad name", ("true",), 1),)), "Phase"),
                           (ArgvProgram(phases=(Phase("run", ("true",), 1),), files={"../x": b""}), "files"),
                           (ArgvProgram(phases=(Phase("run", ("true",), 1),), ro_binds=("relative",)), "ro_binds"),
                           (ArgvProgram(phases=(Phase("run", ("true",), 1),), env={"A=B": "c"}), "env"),
                           (ArgvProgram(phases=(Phase("run", ("true",), 1),), executable=frozenset({"x"})),
                            "executable")):
        with pytest.raises(ValueError, match=field):
            box.run_argv(program)


def test_a_forged_phase_record_does_not_count(box):
    fake = "echo; echo 00000000000000000000000000000000 phase run exit 0 0.001; exit 4"
    result = box.run_argv(ArgvProgram(phases=(Phase("run", ("/bin/sh", "-c", fake), 5),)))
    assert result.reason == "phase run: exit status 4" and len(result.phases) == 1


def test_the_seccomp_filter_refuses_each_syscall(box):
    need_gcc()
    result = box.run_argv(c_program(SYSCALLS))
    assert result.status == "passed", (result.reason, result.output)
    lines = {parts[0]: parts[1:] for parts in (line.rsplit(" ", 2) for line in result.output.decode().splitlines())
             if len(parts) == 3}
    eperm = str(errno.EPERM)
    for name in ("memfd_create", "ptrace", "process_vm_readv", "process_vm_writev", "keyctl", "add_key",
                 "request_key", "io_uring_setup", "bpf", "perf_event_open", "userfaultfd", "unshare", "socket unix",
                 "socket unix high bits", "socket inet", "socketpair"):
        assert lines[name] == ["-1", eperm], (name, lines.get(name))
    assert int(lines["getpid"][0]) > 0  # the filter lets the rest through


@pytest.mark.parametrize("source", [I386, X32], ids=["i386", "x32"])
def test_other_syscall_abis_kill_the_process(box, source):
    need_gcc()
    result = box.run_argv(c_program(source))
    assert result.reason == "phase run: killed by SIGSYS", (result.reason, result.output)


def test_allowed_socket_families_stay_usable():
    inet = make_box(SandboxLimits(timeout_s=3.0, socket_families=(socket.AF_INET,)))
    server = ("import socket\ns = socket.create_server(('127.0.0.1', 0))\nc = socket.create_connection("
              "s.getsockname())\na, _ = s.accept()\nc.sendall(b'ok')\nassert a.recv(2) == b'ok'\n")
    assert inet.run(server).result == "passed"  # loopback inside the sandbox's own network namespace
    assert inet.run("import socket\nsocket.socket(socket.AF_UNIX)\n").result.startswith("failed: PermissionError")
