"""The sandbox's seccomp filter, built with libseccomp (through ctypes), handed to bubblewrap as BPF (``--seccomp FD``).

    bpf = seccomp_filter(socket_families=())   # bytes: a compiled cBPF program, as bwrap --seccomp reads it

Every syscall is allowed except the ones below, which fail with EPERM in every process of the sandbox (bwrap
installs the filter just before it starts the program, with no_new_privs, so it cannot be undone):
``memfd_create``/``memfd_secret`` (memory no tmpfs size or file limit sees), ``ptrace``,
``process_vm_readv``/``writev``, ``process_madvise``, ``pidfd_getfd`` (another process's memory or files),
the kernel keyring, ``io_uring_*``, ``bpf``, ``perf_event_open``, ``userfaultfd``, mounts and namespaces,
modules, kexec, swap, reboot, ``open_by_handle_at``, and ``socket``/``socketpair`` for every address family
but ``socket_families`` (none by default: no Unix socket can reach a host service, whatever is bound). A
syscall of another ABI (i386 ``int 0x80``, x32) kills the process: libseccomp's filter admits the native one
only. libseccomp builds and checks the BPF; nothing here assembles instructions. The Python bindings on PyPI
(``pyseccomp``, last released 2021) and Debian's ``python3-seccomp`` (system Python only) are thinner or less
available than these few ctypes calls, which need only the standard library. Library module, no command line.
"""
from __future__ import annotations

import ctypes
import errno
import os
import tempfile
from typing import Sequence

ALLOW = 0x7FFF0000  # SCMP_ACT_ALLOW
EPERM = 0x00050000 | errno.EPERM  # SCMP_ACT_ERRNO(EPERM)
MASKED_EQ = 7  # SCMP_CMP_MASKED_EQ: (arg & datum_a) == datum_b
FAMILIES = 64  # above every AF_* the kernel knows (AF_MAX is 46 in 6.x); larger ones fail with EAFNOSUPPORT
DENIED = (
    "memfd_create", "memfd_secret", "ptrace", "process_vm_readv", "process_vm_writev", "process_madvise",
    "pidfd_getfd", "keyctl", "add_key", "request_key", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "bpf", "perf_event_open", "userfaultfd", "mount", "umount2", "pivot_root", "chroot", "move_mount",
    "open_tree", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr", "unshare", "setns",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load", "swapon", "swapoff",
    "reboot", "acct", "quotactl", "open_by_handle_at", "name_to_handle_at", "syslog")
REQUIRED = ("memfd_create", "ptrace", "process_vm_readv", "process_vm_writev", "keyctl", "add_key", "request_key",
            "io_uring_setup", "bpf", "perf_event_open", "userfaultfd", "socket", "socketpair")


class SeccompUnavailable(RuntimeError):
    """libseccomp is missing or refused to build the filter; nothing runs without it."""


class _ArgCompare(ctypes.Structure):  # struct scmp_arg_cmp
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


def _library() -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError as exc:
        raise SeccompUnavailable("libseccomp is not installed; install it with `apt-get install -y libseccomp2` "
                                 f"(make venv does) - generated code is never run without the filter ({exc})") from exc
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(_ArgCompare)]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    return lib


def libseccomp_version() -> str:
    class Version(ctypes.Structure):
        _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]

    lib = _library()
    lib.seccomp_version.restype = ctypes.POINTER(Version)
    version = lib.seccomp_version().contents
    return f"{version.major}.{version.minor}.{version.micro}"


def _deny(lib: ctypes.CDLL, context: int, name: str, family: int | None = None) -> bool:
    number = lib.seccomp_syscall_resolve_name(name.encode())
    if number < 0:  # unknown to this libseccomp (a newer syscall): the kernel then has nothing to filter either
        if name in REQUIRED:
            raise SeccompUnavailable(f"libseccomp does not know the syscall {name}")
        return False
    # the family is an int: compare the low 32 bits only, or 1 | (1 << 32) would slip past as AF_UNIX
    compare = (_ArgCompare * 1)(_ArgCompare(0, MASKED_EQ, 0xFFFFFFFF, family)) if family is not None else None
    result = lib.seccomp_rule_add_array(context, EPERM, number, 0 if compare is None else 1, compare)
    if result != 0:
        raise SeccompUnavailable(f"libseccomp refused the rule for {name}: {os.strerror(-result)}")
    return True


def seccomp_filter(socket_families: Sequence[int] = ()) -> bytes:
    """The compiled filter; ``socket_families`` (e.g. ``socket.AF_INET``) stay usable, every other family fails."""
    lib = _library()
    context = lib.seccomp_init(ALLOW)
    if not context:
        raise SeccompUnavailable("seccomp_init failed")
    try:
        for name in DENIED:
            _deny(lib, context, name)
        for name in ("socket", "socketpair"):
            if not socket_families:
                _deny(lib, context, name)
                continue
            for family in set(range(FAMILIES)) - set(socket_families):
                _deny(lib, context, name, family)
        with tempfile.TemporaryFile() as out:
            result = lib.seccomp_export_bpf(context, out.fileno())
            if result != 0:
                raise SeccompUnavailable(f"seccomp_export_bpf failed: {os.strerror(-result)}")
            out.seek(0)
            return out.read()
    finally:
        lib.seccomp_release(context)
