"""Blending: the fork's per-dataset counts, its greedy blending index and the blended rows."""
import json

import numpy as np
import pytest

from dataset.splitting.blending import blending_weights, build_blending_index, per_dataset_num_samples
from training.samples.packed_dataset import build_packed_dataset

KEYS = ("decoder_token_ids", "decoder_segment_ids", "decoder_is_inputs")


def reference_blending(weights, size):
    """helpers.cpp ``build_blending_indices`` transcribed with numpy (argmax keeps the first maximum)."""
    counts = np.zeros(len(weights), dtype=np.int64)
    index = np.zeros(size, dtype=np.uint8)
    sample = np.zeros(size, dtype=np.int64)
    for k in range(size):
        errors = np.asarray(weights, dtype=np.float64) * max(float(k), 1.0) - counts.astype(np.float64)
        best = int(np.argmax(errors))
        index[k], sample[k] = best, counts[best]
        counts[best] += 1
    return index, sample


def test_per_dataset_num_samples_as_the_fork(fork_dir):
    log = json.loads((fork_dir / "generation_log.json").read_text())["summary"]["blend"]
    member = log["member_num_samples"]
    for column, total in enumerate([120, 12, 0]):
        assert per_dataset_num_samples(total, [0.7, 0.3]) == [m[column] for m in member]
    assert per_dataset_num_samples(120, [7, 3]) == [85, 37]  # weights are normalised first


def test_blending_index_matches_the_fork(fork_dir):
    expected = np.load(fork_dir / "blend_train.npz")
    index, sample = build_blending_index(blending_weights([0.7, 0.3]), 207 + 76)
    assert index.dtype == np.uint8 and sample.dtype == np.int64
    np.testing.assert_array_equal(index, expected["dataset_index"])
    np.testing.assert_array_equal(sample, expected["dataset_sample_index"])
    assert list(index[:16]) == [0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1, 0]


@pytest.mark.parametrize("seed", range(4))
def test_blending_index_equals_the_transcribed_helper(seed):
    rng = np.random.default_rng(seed)
    weights = blending_weights(rng.random(int(rng.integers(1, 6))) + 0.01)
    got = build_blending_index(weights, 3000)
    want = reference_blending(weights, 3000)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_exact_ties_pick_the_first_dataset():
    index, _ = build_blending_index(blending_weights([1, 1, 1, 1]), 8)
    assert list(index) == [0, 1, 2, 3, 0, 1, 2, 3]


def test_blended_rows_match_the_fork(fork_dir, tmp_path):
    text = (fork_dir / "train_blend_data_paths.txt").read_text()
    split = tmp_path / "blend.txt"
    split.write_text(text.replace(" sample", f" {fork_dir.resolve()}/sample"))
    dataset = build_packed_dataset(split, None, 120, 256, 1234, tmp_path / "cache", 4)
    expected = np.load(fork_dir / "blend_train.npz")
    assert len(dataset) == 283
    assert [m.num_samples for m in dataset.report.members] == [85, 37]
    assert [m.rows for m in dataset.report.members] == [207, 76]
    np.testing.assert_array_equal(dataset.dataset_index, expected["dataset_index"])
    for key in KEYS:
        got = np.stack([dataset[i][key] for i in range(8)])
        assert got.dtype == expected[key].dtype
        np.testing.assert_array_equal(got, expected[key], err_msg=key)
    assert 120 <= dataset.usable_length < len(dataset)  # like the fork, the tail asks sample2 for rows it lacks
    with pytest.raises(IndexError, match="only the first"):
        dataset[dataset.usable_length]
