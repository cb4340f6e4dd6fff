"""get_batch: identical to the fork's tensors on the fixture micro-batches."""
import numpy as np
import pytest
import torch

from training.samples.mtf_batch import get_batch, normalize_runs
from training.local.packed_attention import sdpa_attend_mask

PAD = 4


@pytest.fixture(scope="module")
def fixtures():
    from tests.conftest import FORK_FIXTURES
    return np.load(FORK_FIXTURES / "packed_rows_train.npz"), np.load(FORK_FIXTURES / "batch_train.npz")


def micro_batch(rows, m):
    return {k: torch.from_numpy(rows[k][2 * m:2 * m + 2]) for k in rows.files}


@pytest.mark.parametrize("m", range(4))
def test_batch_matches_the_fork(fixtures, m):
    rows, expected = fixtures
    plain = get_batch(micro_batch(rows, m), PAD, norm_target_loss=False)
    normed = get_batch(micro_batch(rows, m), PAD, norm_target_loss=True)
    for name in ("tokens", "labels", "loss_mask", "attention_mask", "position_ids"):
        want = torch.from_numpy(expected[name][m])
        got = getattr(plain, name)
        assert got.dtype == want.dtype, name
        assert torch.equal(got, want), name
    want = torch.from_numpy(expected["loss_mask_normalized"][m])
    assert normed.loss_mask.dtype == torch.float32
    assert torch.equal(normed.loss_mask.reshape(-1), want)  # bit-exact float32
    for name in ("tokens", "labels", "attention_mask", "position_ids"):
        assert torch.equal(getattr(plain, name), getattr(normed, name))


def test_normalised_mask_sums_to_the_number_of_targets(fixtures):
    rows, _ = fixtures
    sums = [float(get_batch(micro_batch(rows, m), PAD, True).loss_mask.double().sum()) for m in range(4)]
    assert [round(s) for s in sums] == [3, 4, 6, 2]


def test_pad_literal_in_a_target_is_not_trained_on(fixtures):
    rows, _ = fixtures
    batch = get_batch(micro_batch(rows, 1), PAD, False)  # row 3 packs documents 90 and 73
    pad_labels = (batch.labels == PAD) & (batch.segment_ids != 0)
    assert pad_labels.any() and not batch.loss_mask[pad_labels].any()


def test_normalize_runs_equals_unique_consecutive():
    values = torch.tensor([0, 0, 1, 1, 1, 0, 1, 0, 0, 1, 1], dtype=torch.float32)
    _, inverse, counts = torch.unique_consecutive(values, return_inverse=True, return_counts=True)
    assert torch.equal(normalize_runs(values), values / counts[inverse])


def test_sdpa_mask_is_the_inverse_with_padding_rows_kept_finite(fixtures):
    rows, _ = fixtures
    batch = get_batch(micro_batch(rows, 0), PAD, False)
    allowed = sdpa_attend_mask(batch.attention_mask)
    real = batch.segment_ids != 0
    assert torch.equal(allowed[:, 0][real], (~batch.attention_mask)[:, 0][real])
    assert bool(allowed.any(dim=-1).all())
    eye = torch.eye(real.shape[1], dtype=torch.bool)
    assert (~real).any() and all(torch.equal(allowed[b, 0][~real[b]], eye[~real[b]]) for b in range(real.shape[0]))
    raw = sdpa_attend_mask(batch.attention_mask, padding_attends_itself=False)
    assert torch.equal(raw, ~batch.attention_mask)


def test_loss_on_all_non_pad_labels_when_not_targets_only(fixtures):
    """The fork's ``loss_on_targets_only=False`` branch: inputs count too, pad labels never do."""
    rows, expected = fixtures
    for m in range(4):
        batch = get_batch(micro_batch(rows, m), PAD, False, loss_on_targets_only=False)
        labels = torch.from_numpy(expected["labels"][m])
        assert torch.equal(batch.loss_mask, (labels != PAD).float())
        targets_only = torch.from_numpy(expected["loss_mask"][m])
        assert bool((batch.loss_mask >= targets_only).all()) and batch.loss_mask.sum() > targets_only.sum()
