"""``dataset.splitting.gpt_index``: the fork's --split ranges and epoch rule, against hand-worked values and definitions."""
import numpy as np
import pytest

from dataset.splitting.gpt_index import GPTIndexError, build_sample_idx, plan_epochs, split_document_ranges


def test_split_ranges_match_the_fixture_readme():
    assert split_document_ranges("969,30,1", 300) == [0, 291, 300, 300]  # fixtures/fork_fim/README.md
    assert split_document_ranges("969, 30, 1", 300) == [0, 291, 300, 300]
    # 9, round(0.5) = 0, round(0.5) = 0 sum to 9: the missing document goes to every bound after the first
    assert split_document_ranges("90/5/5", 10) == [0, 10, 10, 10]
    assert split_document_ranges("1", 7) == [0, 7, 7, 7]
    with pytest.raises(GPTIndexError, match="expected numbers"):
        split_document_ranges("a,b", 10)


@pytest.mark.parametrize("tokens", [2, 3, 129, 3044, 117797])
@pytest.mark.parametrize("num_samples", [0, 1, 55, 240, 5000])
def test_epochs_are_the_smallest_that_serve_num_samples(tokens, num_samples):
    plan = plan_epochs(tokens, 128, num_samples)
    assert (plan.epochs * tokens - 1) // 128 >= num_samples  # enough (the README's definition)
    assert plan.epochs == 1 or ((plan.epochs - 1) * tokens - 1) // 128 < num_samples  # and the smallest


def test_separate_last_epoch_for_the_valid_fixture():
    plan = plan_epochs(3044, 128, 55)  # README: 3 epochs, last has 8 samples < int(0.8 * 23)
    assert (plan.epochs, plan.samples_per_epoch, plan.separate_last_epoch, plan.samples_before_last_epoch) \
        == (3, 23, True, 47)
    assert not plan_epochs(3044, 128, 23 * 2 + 20).separate_last_epoch  # 20 >= int(0.8 * 23) = 18


def test_sample_idx_by_hand():
    # documents of 3, 1 (one token) and 4 tokens, seq_length 2: samples start at tokens 0, 2, 4, 6
    sample_idx = build_sample_idx(np.array([3, 1, 4], dtype=np.int32), np.array([0, 1, 2], dtype=np.int32), 2, 1, 8)
    assert sample_idx.tolist() == [[0, 0], [0, 2], [2, 0], [2, 2]]
    # an empty document is passed over: the token at position 3 is in document 2
    sample_idx = build_sample_idx(np.array([3, 0, 4], dtype=np.int32), np.array([0, 1, 2], dtype=np.int32), 3, 1, 7)
    assert sample_idx.tolist() == [[0, 0], [2, 0], [2, 3]]
