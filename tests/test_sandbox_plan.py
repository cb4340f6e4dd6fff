"""The sandbox's plans, checked without running it: which cgroups to use (v1, v2, none), what to bind, the argv."""
import os
import subprocess
from pathlib import Path

import pytest

from evaluation.sandbox_binds import HostLayout, bwrap_mounts, outermost, read_host_layout
from evaluation.sandbox_cgroup import CgroupParents, SandboxCgroup, find_parents
from evaluation.sandbox_process import Launch, bwrap_argv, unprivileged_launcher


def cgroup_folder(path: Path, subtree: str | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "cgroup.procs").write_text("")
    if subtree is not None:
        (path / "cgroup.subtree_control").write_text(subtree)
    return path


def mount(point: Path, kind: str, options: str, root: str = "/") -> str:
    return f"35 31 0:32 {root} {point} rw,relatime - {kind} {kind} rw,{options}"


def test_cgroup_v1_uses_this_process_own_cgroup_of_each_controller(tmp_path):
    pids, memory = cgroup_folder(tmp_path / "pids"), cgroup_folder(tmp_path / "memory" / "api" / "me")
    mountinfo = "\n".join([mount(tmp_path / "pids", "cgroup", "pids"), mount(tmp_path / "memory", "cgroup", "memory"),
                           mount(tmp_path / "cpu", "cgroup", "cpu,cpuacct")])
    found = find_parents(mountinfo, "8:pids:/\n4:memory:/api/me\n1:cpu,cpuacct:/\n0::/\n")
    assert found == CgroupParents(pids, memory, "v1")
    assert found.describe() == f"cgroup v1: pids ({pids}), memory ({memory})"


def test_cgroup_v1_inside_a_container_whose_mount_root_is_not_the_hierarchy_root(tmp_path):
    memory = cgroup_folder(tmp_path / "memory" / "sub")
    mountinfo = mount(tmp_path / "memory", "cgroup", "memory", root="/docker/abc")
    assert find_parents(mountinfo, "4:memory:/docker/abc/sub\n").memory == memory
    assert find_parents(mountinfo, "4:memory:/elsewhere\n").memory is None  # not visible in this mount


def test_cgroup_v2_delegated_to_this_cgroup_or_its_parent(tmp_path):
    unified = tmp_path / "unified"
    mountinfo = mount(unified, "cgroup2", "nsdelegate")
    own = cgroup_folder(unified / "svc" / "harness", "pids memory")
    assert find_parents(mountinfo, "0::/svc/harness\n") == CgroupParents(own, own, "v2")
    (own / "cgroup.subtree_control").write_text("")  # a leaf: the parent delegates instead
    parent = cgroup_folder(unified / "svc", "cpu memory pids")
    assert find_parents(mountinfo, "0::/svc/harness\n") == CgroupParents(parent, parent, "v2")
    (parent / "cgroup.subtree_control").write_text("pids")  # no memory controller: no cgroup at all
    assert find_parents(mountinfo, "0::/svc/harness\n") == CgroupParents(None, None, "")


def test_no_cgroup_when_nothing_is_writable(tmp_path):
    assert find_parents("", "0::/\n") == CgroupParents(None, None, "")
    assert find_parents("", "0::/\n").describe() == "no writable cgroup"


def test_the_limits_written_into_a_cgroup(tmp_path):
    v1 = CgroupParents(cgroup_folder(tmp_path / "pids"), cgroup_folder(tmp_path / "memory"), "v1")
    group = SandboxCgroup(v1, max_pids=19, memory_bytes=1 << 28)
    for folder in group.folders:
        folder.mkdir()
        group._limit(folder)
    assert {f.parent.name: sorted(p.name for p in f.iterdir()) for f in group.folders} == {
        "pids": ["pids.max"], "memory": ["memory.limit_in_bytes"]}
    assert (group.folders[1] / "pids.max").read_text() == "19"
    v2_parent = cgroup_folder(tmp_path / "v2")
    group = SandboxCgroup(CgroupParents(v2_parent, v2_parent, "v2"), max_pids=19, memory_bytes=1 << 28)
    (folder,) = group.folders
    folder.mkdir()
    for extra in ("memory.swap.max", "memory.oom.group"):
        (folder / extra).write_text("max")
    group._limit(folder)
    assert {p.name: p.read_text() for p in folder.iterdir()} == {
        "pids.max": "19", "memory.max": str(1 << 28), "memory.swap.max": "0", "memory.oom.group": "1"}
    (folder / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n")
    group.made = [folder]
    assert group.oom_kills() == 2


def test_a_real_cgroup_holds_its_member_and_kills_it_on_exit():
    parents = find_parents()
    if parents.pids is None or os.geteuid() != 0:
        pytest.skip(f"needs root and a writable pids cgroup ({parents.describe()})")
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        with SandboxCgroup(parents, max_pids=5, memory_bytes=1 << 28) as group:
            group.adopt(sleeper.pid)
            lines = Path(f"/proc/{sleeper.pid}/cgroup").read_text()
            assert all(folder.name in lines for folder in group.folders), lines
            assert (group.folders[0] / "cgroup.procs").read_text().split() == [str(sleeper.pid)]
            made = list(group.folders)
        assert sleeper.wait(timeout=10) == -9 and not any(folder.exists() for folder in made)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_binds_follow_the_host_layout_and_nothing_more():
    layout = HostLayout(top_level=(("/bin", "usr/bin"), ("/lib64", None)),
                        etc=(("/etc/ld.so.cache", None), ("/etc/localtime", "/usr/share/zoneinfo/UTC")))
    args = bwrap_mounts(layout, ["/usr/lib/python3.11", "/opt/py/bin", "/opt/py", "/tmp/clone/venv"], 1 << 20,
                        proc=False)
    assert args == ["--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--ro-bind", "/lib64", "/lib64",
                    "--dir", "/etc", "--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache",
                    "--symlink", "/usr/share/zoneinfo/UTC", "/etc/localtime", "--dev", "/dev", "--remount-ro", "/dev",
                    "--size", str(1 << 20), "--tmpfs", "/tmp", "--ro-bind", "/opt/py", "/opt/py",
                    "--ro-bind", "/tmp/clone/venv", "/tmp/clone/venv", "--dir", "/tmp/program"]
    assert "--proc" in bwrap_mounts(layout, [], 1 << 20, proc=True)
    assert outermost(["/a/b", "/a", "/ab", "/usr/x"]) == ["/a", "/ab"]


def test_this_host_layout_has_no_secret_in_etc():
    layout = read_host_layout()
    names = {os.path.basename(path) for path, _ in layout.etc}
    assert not names & {"shadow", "gshadow", "sudoers", "ssh", "passwd", "group"}
    assert any(path == "/lib64" or path == "/lib" for path, _ in layout.top_level)


def test_the_bwrap_command_line():
    launch = Launch(unprivileged_launcher("/usr/bin/bwrap", "/usr/bin/setpriv", 65534), ["--ro-bind", "/usr", "/usr"],
                    {"PATH": "/usr/bin"}, ["/usr/bin/python3", "-c", "pass"], {}, b"", b"", 1.0, 10)
    argv = bwrap_argv(launch, seccomp_fd=7, info_fd=8, block_fd=9, file_fds=[(10, "/etc/passwd", 0o644)])
    assert argv[:5] == ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/bwrap"]
    for flags in (["--unshare-all", "--unshare-user", "--disable-userns"], ["--uid", "65534"], ["--cap-drop", "ALL"],
                  ["--perms", "644", "--file", "10", "/etc/passwd"], ["--seccomp", "7"], ["--info-fd", "8"],
                  ["--block-fd", "9"], ["--clearenv", "--setenv", "PATH", "/usr/bin"]):
        assert any(argv[i:i + len(flags)] == flags for i in range(len(argv))), flags
    assert argv[argv.index("--") + 1:] == ["/usr/bin/python3", "-c", "pass"]
    assert ["--ro-bind", "/", "/"] not in [argv[i:i + 3] for i in range(len(argv))]
    assert unprivileged_launcher("/usr/bin/bwrap", None, None) == ["/usr/bin/bwrap"]
    with pytest.raises(ValueError, match="setpriv"):
        unprivileged_launcher("/usr/bin/bwrap", None, 65534)
