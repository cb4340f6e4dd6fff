"""commits_to_jsonl on a git repository the test builds: kept pairs, skip reasons, walk modes, seeding."""
import json
import os
import subprocess
from pathlib import Path

import pytest

from dataset.builders.commits_to_jsonl import CommitPairSettings, build_commit_pairs, main
from dataset.builders.git_runner import GitError, git_argv, run_git


class Repo:
    """A throwaway repository driven with plain git (independent of the code under test)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.env = dict(
            os.environ, HOME=str(path.parent), GIT_CONFIG_NOSYSTEM="1", GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@x",
            GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@x", GIT_AUTHOR_DATE="2024-01-01T00:00:00Z",
            GIT_COMMITTER_DATE="2024-01-01T00:00:00Z",
        )
        path.mkdir()
        self.git("-c", "init.defaultBranch=main", "init", "-q")

    def git(self, *args: str) -> str:
        return subprocess.run(["git", *args], cwd=self.path, env=self.env, check=True, capture_output=True).stdout.decode()

    def write(self, name: str, data: bytes | str) -> None:
        target = self.path / name
        target.write_bytes(data.encode() if isinstance(data, str) else data)

    def commit(self, message: str, *paths: str) -> None:
        self.git("add", "-A", *paths)
        self.git("commit", "-q", "-m", message)


@pytest.fixture
def history(tmp_path: Path) -> Repo:
    repo = Repo(tmp_path / "repo")
    repo.write("app.py", "def f():\n    return 1\n")
    repo.write("data.bin", b"\x89PNG\x00\x01\x02")
    repo.write("big.txt", "x" * 200)
    repo.write("old_name.py", "print('a')\n")
    repo.write("gone.txt", "bye\n")
    repo.write("latin.txt", b"caf\xe9\n")
    repo.write("tokens.txt", "plain\n")
    repo.commit("Add files")
    repo.write("app.py", "def f():\n    return 2\n")
    repo.commit("Fix f to return 2\n\nThe body of the message is not part of the pair.")
    repo.write("data.bin", b"\x89PNG\x00\x03\x04")
    repo.commit("Update binary")
    repo.write("big.txt", "y" * 300)
    repo.commit("Grow big file")
    repo.git("mv", "old_name.py", "new_name.py")
    repo.commit("Rename module")
    repo.git("rm", "-q", "gone.txt")
    repo.commit("Remove gone")
    repo.write("latin.txt", b"caf\xe9s\n")
    repo.commit("Latin-1 edit")
    repo.write("tokens.txt", "plain <|endoftext|>\n")
    repo.commit("Literal special token")
    repo.git("update-index", "--chmod=+x", "app.py")
    repo.git("commit", "-q", "-m", "Make app executable")
    repo.git("checkout", "-q", "-b", "side")
    repo.write("app.py", "def f():\n    return 3\n")
    repo.commit("Side change")
    repo.git("checkout", "-q", "main")
    repo.write("README.md", "hello\n")
    repo.commit("Add readme")
    repo.git("merge", "-q", "--no-edit", "side")
    return repo


FIRST_PARENT_SKIPS = {
    "added_file": 8, "binary_file": 1, "oversized_file": 1, "renamed_file": 1, "deleted_file": 1,
    "undecodable_utf8": 1, "special_token_in_text": 1, "unchanged_content": 1, "merge_commit": 1,
}
FIX_PAIR = {
    "inputs": "<filename>app.py<commit_before>def f():\n    return 1\n<commit_msg>",
    "targets": "Fix f to return 2<commit_after>def f():\n    return 2\n<|endoftext|>",
}


def test_first_parent_walk_keeps_the_modified_text_file_and_counts_every_skip(history, tmp_path):
    out = tmp_path / "out" / "commits.jsonl"
    rc = main(["--repo", str(history.path), "--output", str(out), "--max-file-bytes", "100",
               "--filename-probability", "1"])
    assert rc == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [FIX_PAIR]
    assert list(json.loads(lines[0])) == ["inputs", "targets"]
    manifest = json.loads((tmp_path / "out" / "commits.jsonl.manifest.json").read_text())
    assert manifest["skipped"] == FIRST_PARENT_SKIPS
    assert manifest["records"] == 1 and manifest["commits"] == 11
    assert manifest["head"] == history.git("rev-parse", "HEAD").strip()
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["commits.jsonl", "commits.jsonl.manifest.json"], "no temporaries left behind"


def test_walk_all_adds_side_branch_commits_and_coin_can_drop_the_filename(history):
    settings = CommitPairSettings(walk="all", max_file_bytes=100, filename_probability=0.0)
    pairs = build_commit_pairs(history.path, settings)
    side = {"inputs": "<commit_before>def f():\n    return 2\n<commit_msg>",
            "targets": "Side change<commit_after>def f():\n    return 3\n<|endoftext|>"}
    fix = {"inputs": FIX_PAIR["inputs"].replace("<filename>app.py", ""), "targets": FIX_PAIR["targets"]}
    got = [{"inputs": r.inputs, "targets": r.targets} for r in pairs.records]
    assert sorted(got, key=str) == sorted([fix, side], key=str)
    assert pairs.commits == 12 and pairs.skipped["merge_commit"] == 1


def test_seeded_sampling_is_reproducible_and_counts_what_it_did_not_examine(tmp_path):
    repo = Repo(tmp_path / "many")
    repo.write("n.txt", "0\n")
    repo.commit("start")
    for i in range(1, 13):
        repo.write("n.txt", f"{i}\n")
        repo.commit(f"set {i}")
    runs = [build_commit_pairs(repo.path, CommitPairSettings(seed=s, max_records=5)) for s in (7, 7, 8)]
    assert runs[0].records == runs[1].records
    assert runs[0].records != runs[2].records
    assert len(runs[0].records) == 5 and runs[0].skipped["not_examined"] == 7
    subjects = {r.targets.split("<commit_after>")[0] for r in runs[0].records}
    assert subjects <= {f"set {i}" for i in range(1, 13)} and len(subjects) == 5
    for record in runs[0].records:  # old content is the previous value, new the subject's value
        i = int(record.targets.split("set ")[1].split("<")[0])
        assert record.inputs.endswith(f"<commit_before>{i - 1}\n<commit_msg>")
        assert record.targets == f"set {i}<commit_after>{i}\n<|endoftext|>"


def test_odd_path_names_and_single_file_commit_filter(tmp_path):
    repo = Repo(tmp_path / "odd")
    name = "dir with space/wéird\nname.py"
    (repo.path / "dir with space").mkdir()
    repo.write(name, "a = 1\n")
    repo.write("other.py", "b = 1\n")
    repo.commit("start")
    repo.write(name, "a = 2\n")
    repo.commit("Edit odd file")
    repo.write(name, "a = 3\n")
    repo.write("other.py", "b = 2\n")
    repo.commit("Edit two files")
    pairs = build_commit_pairs(repo.path, CommitPairSettings(filename_probability=1.0, single_file_commits=True))
    assert [(r.inputs, r.targets) for r in pairs.records] == [
        ("<filename>wéird\nname.py<commit_before>a = 1\n<commit_msg>", "Edit odd file<commit_after>a = 2\n<|endoftext|>")
    ]
    assert pairs.skipped["multi_file_commit"] == 2  # the root commit and the two-file edit


def test_git_runs_from_an_argv_list_and_failures_name_the_repository(tmp_path):
    argv = git_argv(tmp_path, ["log", "-n", "1"])
    assert argv[:3] == ["git", "-C", str(tmp_path)] and argv[-3:] == ["log", "-n", "1"]
    assert "core.fsmonitor=false" in argv
    with pytest.raises(GitError, match=str(tmp_path)):
        run_git(tmp_path, ["log"])
    out = tmp_path / "never.jsonl"
    assert main(["--repo", str(tmp_path), "--output", str(out)]) == 2
    assert not out.exists()
