"""Packed rows and the packing CLI: identical to the fork's rows and cache files; caches keyed by content."""
import json
import shutil

import numpy as np
import pytest

from dataset.indexed_dataset import IndexedDataset, IndexedDatasetWriter
from training.packed_dataset import build_packed_dataset
from training.packing import main as packing_main

KEYS = ("decoder_token_ids", "decoder_segment_ids", "decoder_is_inputs")
PAD = 4


@pytest.fixture
def splits_dir(fork_dir, tmp_path):
    """The fixture split files with the real fixture path substituted for the relative prefixes."""
    for name in ("train_data_paths.txt", "valid_data_paths.txt", "train_blend_data_paths.txt"):
        text = (fork_dir / name).read_text()
        (tmp_path / name).write_text(text.replace(" sample", f" {fork_dir.resolve()}/sample"))
    return tmp_path


def assert_rows_equal(dataset, expected):
    count = expected["decoder_token_ids"].shape[0]
    for key in KEYS:
        got = np.stack([dataset[i][key] for i in range(count)])
        assert got.dtype == expected[key].dtype, key
        np.testing.assert_array_equal(got, expected[key], err_msg=key)


@pytest.mark.parametrize("split,num_samples,fixture,length", [
    ("train_data_paths.txt", 120, "packed_rows_train.npz", 192),
    ("valid_data_paths.txt", 12, "packed_rows_valid.npz", 15),
])
def test_rows_match_the_fork(fork_dir, splits_dir, split, num_samples, fixture, length):
    dataset = build_packed_dataset(splits_dir / split, None, num_samples, 256, 1234, splits_dir / "cache", PAD,
                                   legacy_split_offsets=True)
    assert len(dataset) == length
    assert dataset[0]["decoder_token_ids"].shape == (257,)
    assert_rows_equal(dataset, np.load(fork_dir / fixture))


def test_over_long_pair_is_counted_in_the_report(splits_dir):
    dataset = build_packed_dataset(splits_dir / "train_data_paths.txt", "train", 120, 256, 1234,
                                   splits_dir / "cache", PAD)
    assert dataset.report.skipped_pairs == 1
    assert dataset.report.members[0].skipped_documents == [374]
    assert [s.document for s in dataset.skipped] == [374]


@pytest.mark.parametrize("split,num_samples,legacy,files", [
    ("train_data_paths.txt", 120, False, ["sample_train_indexmap_120ns_1234s"]),
    ("valid_data_paths.txt", 12, True, ["sample_valid_indexmap_12ns_1234s"]),
    ("train_blend_data_paths.txt", 120, False, ["sample_train_indexmap_85ns_1234s", "sample2_train_indexmap_37ns_1234s"]),
])
def test_cli_writes_the_forks_cache_files(fork_dir, splits_dir, split, num_samples, legacy, files):
    cache = splits_dir / "cache"
    argv = ["--split-file", str(splits_dir / split), "--seq-length", "256", "--seed", "1234",
            "--num-samples", str(num_samples), "--cache-dir", str(cache)] + (["--legacy-split-offsets"] if legacy else [])
    assert packing_main(argv) == 0
    for stem in files:
        for kind in ("batch", "shuffle"):
            name = f"{stem}_decoder_packed_{kind}_idx.npy"
            assert (cache / name).read_bytes() == (fork_dir / name).read_bytes(), name


def test_cli_resolves_relative_prefixes_next_to_the_split_file(fork_dir, tmp_path):
    for path in fork_dir.glob("sample_*_document.*"):
        shutil.copy(path, tmp_path / path.name)
    shutil.copy(fork_dir / "train_data_paths.txt", tmp_path / "train_data_paths.txt")  # relative "sample"
    assert packing_main(["--split-file", str(tmp_path / "train_data_paths.txt"), "--seq-length", "256",
                         "--num-samples", "120", "--cache-dir", str(tmp_path / "c"), "--report",
                         str(tmp_path / "r.json")]) == 0
    name = "sample_train_indexmap_120ns_1234s_decoder_packed_batch_idx.npy"
    assert (tmp_path / "c" / name).read_bytes() == (fork_dir / name).read_bytes()
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["skipped_pairs"] == 1 and report["members"][0]["skipped_documents"] == [374]  # fixture README
    assert report["members"][0]["prefix"] == str(tmp_path / "sample")


def test_cli_reports_bad_input(tmp_path, capsys):
    (tmp_path / "s.txt").write_text('"train: 1.0 0:1 nowhere"\n')
    assert packing_main(["--split-file", str(tmp_path / "s.txt"), "--seq-length", "8", "--num-samples", "1",
                         "--cache-dir", str(tmp_path)]) == 1
    assert "nowhere" in capsys.readouterr().err


def test_valid_range_really_held_out_by_default(fork_dir, splits_dir):
    dataset = build_packed_dataset(splits_dir / "valid_data_paths.txt", None, 12, 256, 1234, splits_dir / "c", PAD)
    member = dataset.report.members[0]
    assert member.document_range == member.documents_used == (380, 400)
    used = {int(d) for d in dataset.shuffle_idx}
    assert used == set(range(380, 400))
    inputs = IndexedDataset(fork_dir / "sample_inputs_document")
    first = dataset.shuffle_idx[dataset.batch_idx[0][0]]
    row = dataset[0]["decoder_token_ids"]
    np.testing.assert_array_equal(row[:inputs.sizes[first]], inputs[first])


def _write_dataset(prefix, pairs):
    for key, index in (("inputs", 0), ("targets", 1)):
        writer = IndexedDatasetWriter(f"{prefix}_{key}_document", np.dtype(np.uint16))
        for pair in pairs:
            writer.add(np.array(pair[index], dtype=np.uint16))
        writer.finalize()
        writer.commit()


def test_cache_is_rebuilt_when_the_data_changes(tmp_path):
    rng = np.random.default_rng(0)
    pairs = [(rng.integers(5, 99, size=rng.integers(1, 6)), rng.integers(5, 99, size=rng.integers(1, 6)))
             for _ in range(30)]
    _write_dataset(tmp_path / "d", pairs)
    (tmp_path / "s.txt").write_text('"train: 1.0 0:1 d"\n')

    def build():
        return build_packed_dataset(tmp_path / "s.txt", None, 10, 15, 7, tmp_path / "cache", 0)

    first = build()
    assert first.report.members[0].rebuilt
    again = build()
    assert not again.report.members[0].rebuilt
    np.testing.assert_array_equal(again.batch_idx, first.batch_idx)
    # same file names, different data: the fork would reuse the stale maps, we rebuild
    _write_dataset(tmp_path / "d", [(a[:1], b) for a, b in pairs])
    changed = build()
    assert changed.report.members[0].rebuilt
    fresh = build_packed_dataset(tmp_path / "s.txt", None, 10, 15, 7, tmp_path / "fresh", 0)
    np.testing.assert_array_equal(changed.batch_idx, fresh.batch_idx)
    assert not np.array_equal(changed.batch_idx, first.batch_idx)  # the stale maps would be wrong
    assert changed.report.members[0].batch_idx_file == first.report.members[0].batch_idx_file
    # another parameter (seq_length) with the same file name is rebuilt too
    other = build_packed_dataset(tmp_path / "s.txt", None, 10, 31, 7, tmp_path / "cache", 0)
    assert other.report.members[0].rebuilt and other[0]["decoder_token_ids"].shape == (32,)


def test_cache_is_rebuilt_when_only_the_range_changes(tmp_path):
    rng = np.random.default_rng(1)
    _write_dataset(tmp_path / "d", [(rng.integers(5, 99, size=3), rng.integers(5, 99, size=2)) for _ in range(30)])
    split = tmp_path / "s.txt"

    def build(cache):  # the fork's file names hold neither the range nor the data: 0:1 and 0:0.5 share them
        return build_packed_dataset(split, None, 10, 15, 7, cache, 0)

    split.write_text('"train: 1.0 0:1 d"\n')
    whole = build(tmp_path / "cache")
    assert max(int(d) for d in whole.shuffle_idx) >= 15  # the second half is read
    split.write_text('"train: 1.0 0:0.5 d"\n')
    half = build(tmp_path / "cache")
    assert half.report.members[0].rebuilt  # stale maps would read documents beyond the range
    assert {int(d) for d in half.shuffle_idx} <= set(range(15))
    np.testing.assert_array_equal(half.batch_idx, build(tmp_path / "fresh").batch_idx)


def test_cli_builds_every_group_of_a_valid_file(fork_dir, tmp_path):
    root = fork_dir.resolve()
    (tmp_path / "v.txt").write_text(f'"valid: 1.0 0.95:1 {root}/sample" "other: 1.0 0:1 {root}/sample2"\n')
    assert packing_main(["--split-file", str(tmp_path / "v.txt"), "--seq-length", "256", "--num-samples", "12",
                         "--cache-dir", str(tmp_path / "c"), "--legacy-split-offsets"]) == 0
    name = "sample_valid_indexmap_12ns_1234s_decoder_packed_batch_idx.npy"
    assert (tmp_path / "c" / name).read_bytes() == (fork_dir / name).read_bytes()
    assert (tmp_path / "c" / "sample2_other_indexmap_12ns_1234s_decoder_packed_shuffle_idx.npy").exists()


def test_over_long_pairs_are_counted_once_however_many_epochs(fork_dir, splits_dir, capsys):
    """2000 samples span several epochs of the 380 training documents: still one over-long pair, as the plan says."""
    from dataset.split_files import parse_split_file, resolve_prefix
    from dataset.split_planner import PlanSettings, plan_splits

    split = splits_dir / "train_data_paths.txt"
    argv = ["--split-file", str(split), "--seq-length", "256", "--num-samples", "2000", "--cache-dir",
            str(splits_dir / "cache"), "--report", str(splits_dir / "r.json")]
    assert packing_main(argv) == 0
    report = json.loads((splits_dir / "r.json").read_text())
    member = report["members"][0]
    assert member["epochs"] > 1 and member["skipped_visits"] == member["epochs"]  # once per epoch in the maps
    assert report["skipped_pairs"] == member["skipped_pairs"] == 1
    assert "WARNING: group 'train': 1 pair(s) longer than 257" in capsys.readouterr().err
    groups = [(g, [resolve_prefix(d.prefix, split) for d in g.datasets]) for g in parse_split_file(split, "train")]
    plan = plan_splits({"train": groups}, PlanSettings(seq_length=256, train_iters=250, global_batch_size=8))
    assert plan.datasets[0].overlong_pairs == report["skipped_pairs"]


def _documents_in_rows(dataset, fork_dir):
    """Per pair in the rows, the documents whose tokens it holds (found by content, not by the report or the maps).

    A set has several documents only where the data repeats a pair word for word.
    """
    inputs = IndexedDataset(fork_dir / "sample_inputs_document")
    targets = IndexedDataset(fork_dir / "sample_targets_document")
    by_tokens = {}
    for doc in range(len(inputs)):
        by_tokens.setdefault(tuple(np.concatenate([inputs[doc], targets[doc]]).tolist()), set()).add(doc)
    found = []
    for i in range(len(dataset)):
        row = dataset[i]
        for segment in range(1, int(row["decoder_segment_ids"].max()) + 1):
            found.append(by_tokens[tuple(row["decoder_token_ids"][row["decoder_segment_ids"] == segment].tolist())])
    return found


def _read_exactly(found, documents):
    """Every pair read is one of ``documents`` and every one of them is read."""
    return all(candidates & documents for candidates in found) and documents <= set().union(*found)


def test_validation_rows_hold_the_held_out_documents_and_flipping_modes_on_one_cache_follows(fork_dir, splits_dir):
    """0.95:1 of 400 documents: the rows hold documents 380..399, or 0..19 under legacy_split_offsets (the fork's
    bug); switching between the two on the same cache folder must rebuild, never reuse the other mode's maps."""
    split, cache = splits_dir / "valid_data_paths.txt", splits_dir / "shared_cache"
    expected = {False: set(range(380, 400)), True: set(range(0, 20))}
    for legacy in (False, True, False):
        dataset = build_packed_dataset(split, None, 12, 256, 1234, cache, PAD, legacy_split_offsets=legacy)
        assert _read_exactly(_documents_in_rows(dataset, fork_dir), expected[legacy]), f"legacy={legacy}"
        assert dataset.report.members[0].rebuilt  # each flip rebuilt the maps it needs
    # the training range 0:0.95 never shares a document with the held-out rows
    train = build_packed_dataset(splits_dir / "train_data_paths.txt", None, 120, 256, 1234, cache, PAD)
    assert not any(candidates <= expected[False] for candidates in _documents_in_rows(train, fork_dir))
