"""Split files: the fork's exact bytes, its accept/reject rules, and the write/check CLI."""
import json

import pytest

from dataset.split_files import (
    SplitDataset, SplitFileError, SplitGroup, format_split_line, parse_split_file, parse_split_line,
)
from dataset.splits import main as splits_main

FIXTURE_FILES = ["train_data_paths.txt", "valid_data_paths.txt", "train_blend_data_paths.txt"]


def fork_accepts(line: str, train: bool = False) -> bool:
    """The fork's own checks, transcribed from ``parse_data_paths_path`` / ``parse_data_paths`` (arguments.py)
    plus the dataset build's ``get_split_by_range_`` and blending ``float(weight)`` (an independent oracle)."""
    lines = line.splitlines(keepends=True) if line else []
    lines = [x.replace("\r\n", "\n") for x in lines]
    try:
        assert len(lines) == 1
        assert lines[0][-2:] == '"\n' and lines[0][0] == '"'
        values = lines[0][1:-2].split('" "')
        if train:
            assert len(values) == 1
        for v in values:
            prefix = ":".join(v.split(":")[1:])
            datasets = prefix.split(",")
            for d in datasets:
                assert len(d.split()) == 3
                start, end = d.split()[1].split(":")
                assert float(start) < float(end)
                assert float(start) >= 0 and float(end) <= 1  # get_split_by_range_, MTFDataset asserts
                assert float(d.split()[0]) > 0  # weights, used by blending
        return True
    except (AssertionError, ValueError):
        return False


def test_parse_matches_the_forks_parse_of_the_fixture_files(fork_dir):
    log = json.loads((fork_dir / "generation_log.json").read_text())["parsed_split_files"]
    for name in FIXTURE_FILES:
        groups = parse_split_file(fork_dir / name)
        expected = log[name]
        assert [g.name for g in groups] == expected["names"]
        assert [[d.weight for d in g.datasets] for g in groups] == [[float(w) for w in ws] for ws in expected["weights"]]
        assert [[d.prefix for d in g.datasets] for g in groups] == expected["paths"]
        ranges = [[(float(s.split(":")[0]), float(s.split(":")[1])) for s in ss] for ss in expected["splits"]]
        assert [[(d.start, d.end) for d in g.datasets] for g in groups] == ranges


def test_format_reproduces_the_fixture_bytes(fork_dir):
    cases = {
        "train_data_paths.txt": [SplitGroup("train", (SplitDataset(1.0, 0, 0.95, "sample"),))],
        "valid_data_paths.txt": [SplitGroup("valid", (SplitDataset(1.0, 0.95, 1, "sample"),))],
        "train_blend_data_paths.txt": [SplitGroup("train", (SplitDataset(0.7, 0, 1, "sample"),
                                                            SplitDataset(0.3, 0, 1, "sample2")))],
    }
    for name, groups in cases.items():
        assert format_split_line(groups).encode() == (fork_dir / name).read_bytes()
        assert parse_split_file(fork_dir / name) == groups


@pytest.mark.parametrize("name,entries", [
    ("train_data_paths.txt", ["train", "1.0 0:0.95 sample"]),
    ("valid_data_paths.txt", ["valid", "1.0 0.95:1 sample"]),
    ("train_blend_data_paths.txt", ["train", "0.7 0:1 sample", "0.3 0:1 sample2"]),
])
def test_write_cli_is_byte_identical(fork_dir, tmp_path, name, entries):
    out = tmp_path / name
    assert splits_main(["write", "--out", str(out), "--keep-relative", "--name", *entries]) == 0
    assert out.read_bytes() == (fork_dir / name).read_bytes()


def test_write_makes_relative_prefixes_absolute_next_to_the_split_file(tmp_path, monkeypatch):
    """The fork opens a prefix from the job's working folder: write absolute ones, resolved as the toolkit reads them."""
    monkeypatch.chdir(tmp_path)  # a relative --out: the prefixes resolve next to it, not here
    (tmp_path / "data").mkdir()
    assert splits_main(["write", "--out", "data/train.txt", "--name", "train", "1.0 0:1 pairs", "0.5 0:1 /abs/x"]) == 0
    assert (tmp_path / "data/train.txt").read_text() == f'"train: 1.0 0:1 {tmp_path}/data/pairs, 0.5 0:1 /abs/x"\n'
    assert splits_main(["write", "--out", "data/t2.txt", "--keep-relative", "--name", "train", "1.0 0:1 pairs"]) == 0
    assert (tmp_path / "data/t2.txt").read_text() == '"train: 1.0 0:1 pairs"\n'


def test_write_cli_several_groups_round_trip(tmp_path):
    out = tmp_path / "valid.txt"
    argv = ["write", "--out", str(out), "--name", "valid", "0.7 0.9:1 a", "0.3 0:1 b", "--group", "other", "1 0:0.5 /x/c"]
    assert splits_main(argv) == 0
    assert out.read_text() == f'"valid: 0.7 0.9:1 {tmp_path}/a, 0.3 0:1 {tmp_path}/b" "other: 1.0 0:0.5 /x/c"\n'
    groups = parse_split_file(out)
    assert [g.name for g in groups] == ["valid", "other"]
    assert fork_accepts(out.read_text())
    assert splits_main(["write", "--out", str(tmp_path / "bad.txt"), "--name", "train", "1.0 0.5:0.2 a"]) == 1
    assert not (tmp_path / "bad.txt").exists()


ACCEPTED = [
    '"train: 1.0 0:0.95 sample"\n',
    '"valid: 1.0 0.95:1 sample"\n',
    '"train: 0.7 0:1 sample, 0.3 0:1 sample2"\n',
    '"valid: 1.0 0.95:1.0 a" "other: 0.6 0.6:0.8 C, 0.3 0:1 D, 0.1 0:1 E"\n',
    '"train:1.0 0:1 /abs/prefix"\n',
    '"train: 1.0 0:0.95 sample"\r\n',  # universal newlines: the fork reads text mode
    '"train: 2 .5:1 p"\n',
]
REJECTED = [
    ('"valid: 1.0 0.95:1.0 output_prefix\n', "missing closing double quote"),  # OctoPack README typo
    ('"train: 1.0 0:0.95 sample"', "missing trailing newline"),
    ('train: 1.0 0:0.95 sample"\n', "must start with a double quote"),
    ('"train: 1.0 0:0.95 sample"\n"valid: 1.0 0.95:1 sample"\n', "2 lines"),
    ('"train: 1.0 0:0.95 sample"\n\n', "2 lines"),
    ("", "0 lines"),
    ('"train: 1.0 0.95:0.5 sample"\n', "START < END"),
    ('"train: 1.0 0.5:0.5 sample"\n', "START < END"),
    ('"train: 1.0 0:1.5 sample"\n', "within 0:1"),
    ('"train: 1.0 -0.5:0.5 sample"\n', "within 0:1"),
    ('"train: 1.0 0.95 sample"\n', "START:END"),
    ('"train: 1.0 0:a sample"\n', "END"),
    ('"train: 1.0 0:1"\n', "expected 3"),
    ('"train: 1.0 0:1 a b"\n', "expected 3"),
    ('"train 1.0 0:1 sample"\n', "group name"),
    ('"train: 1.0 0:1 a,"\n', "dataset 2"),
    ('"train: abc 0:1 a, 1.0 0:1 b"\n', "WEIGHT"),
    ('"train: 0 0:1 a"\n', "positive"),
    ('"train: 1.0 0:1 a" \n', "between the closing double quote"),
]


@pytest.mark.parametrize("line", ACCEPTED)
def test_accepted_like_the_fork(tmp_path, line):
    path = tmp_path / "split.txt"
    path.write_bytes(line.encode())
    assert fork_accepts(line)
    groups = parse_split_file(path)
    assert parse_split_line(format_split_line(groups)) == groups  # what we parsed writes back the same
    assert splits_main(["check", str(path)]) == 0


@pytest.mark.parametrize("line,reason", REJECTED)
def test_rejected_like_the_fork_with_the_reason(tmp_path, capsys, line, reason):
    path = tmp_path / "split.txt"
    path.write_bytes(line.encode())
    assert not fork_accepts(line)
    with pytest.raises(SplitFileError, match=reason) as info:
        parse_split_file(path)
    assert str(path) in str(info.value)
    assert splits_main(["check", str(path)]) == 1
    assert reason in capsys.readouterr().err


def test_train_role_takes_one_group(tmp_path):
    line = '"valid: 1.0 0:1 a" "other: 1.0 0:1 b"\n'
    assert fork_accepts(line) and not fork_accepts(line, train=True)
    path = tmp_path / "split.txt"
    path.write_text(line)
    assert splits_main(["check", str(path), "--role", "valid"]) == 0
    assert splits_main(["check", str(path), "--role", "train"]) == 1
    with pytest.raises(SplitFileError, match="exactly one group"):
        parse_split_line(line, "x", role="train")


def test_check_files_resolves_prefixes_next_to_the_split_file(fork_dir, tmp_path):
    assert splits_main(["check", str(fork_dir / "train_blend_data_paths.txt"), "--check-files"]) == 0
    path = tmp_path / "split.txt"
    path.write_text('"train: 1.0 0:1 missing_prefix"\n')
    assert splits_main(["check", str(path), "--check-files"]) == 1


def test_document_range_rounds_like_python(fork_dir):
    train, = parse_split_file(fork_dir / "train_data_paths.txt")
    valid, = parse_split_file(fork_dir / "valid_data_paths.txt")
    assert train.datasets[0].document_range(400) == (0, 380)
    assert valid.datasets[0].document_range(400) == (380, 400)
    assert SplitDataset(1.0, 0, 0.5, "p").document_range(5) == (0, 2)  # round(2.5) == 2 (half to even)


def test_a_bound_on_half_a_document_rounds_as_the_fork_does_not_down():
    # the fork's get_split_by_range_ takes round(0.95 * 50) = round(47.5) = 48 (half to even); int() would give 47
    assert SplitDataset(1.0, 0, 0.95, "p").document_range(50) == (0, 48)
    assert SplitDataset(1.0, 0.95, 1, "p").document_range(50) == (48, 50)
    assert SplitDataset(1.0, 0.15, 0.85, "p").document_range(10) == (2, 8)  # 1.5 -> 2, 8.5 -> 8: both halves to even
