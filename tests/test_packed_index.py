"""Index maps: byte-identical to the fork's, and equal to a literal transcription of its loop on random data."""
import numpy as np
import pytest

from dataset.formats.indexed_dataset import IndexedDataset
from dataset.splitting.packed_index import PackingError, build_packed_index, pair_lengths, rows_per_epoch

ROW = 257  # seq_length 256 + 1, as finetune_mtf passes it
SEED = 1234


def lengths_of(fork_dir, prefix):
    return pair_lengths(IndexedDataset(fork_dir / f"{prefix}_inputs_document").sizes,
                        IndexedDataset(fork_dir / f"{prefix}_targets_document").sizes)


def fork_reference(lengths, nb_documents, num_samples, seq_length, seed):
    """``_build_index_mappings`` + ``_build_sample_idx`` of decoder_packed_mtf_dataset.py, transcribed
    statement by statement (documents indexed from 0: the fork's split-offset behaviour)."""
    np_rng = np.random.RandomState(seed=seed)
    row_offset, old_sample_start, epoch = 0, 0, 0
    shuffle_idx, sample_idx, skipped = [], [], []
    while len(sample_idx) <= num_samples:
        document_ids = np.arange(start=0, stop=nb_documents, step=1, dtype=np.int64)
        np_rng.shuffle(document_ids)
        shuffle_idx.append(document_ids)
        row_length, full_samples, current_sample_start = row_offset, [], old_sample_start
        epoch_offset = epoch * len(document_ids)
        assert epoch_offset >= current_sample_start
        for current_sample_end, document_id in enumerate(document_ids):
            current_sample_end = epoch_offset + current_sample_end
            tok_len = int(lengths[document_id])
            row_length = row_length + tok_len
            if row_length > seq_length:
                if current_sample_end > current_sample_start:
                    full_samples.append(np.asarray([current_sample_start, current_sample_end]))
                current_sample_start = current_sample_end
                row_length = tok_len
                if tok_len > seq_length:
                    skipped.append(int(document_id))
                    current_sample_start = current_sample_end + 1
                    row_length = 0
                    continue
        sample_idx.extend(full_samples)
        row_offset, old_sample_start = row_length, current_sample_start
        epoch += 1
    return np.concatenate(shuffle_idx), np.stack(sample_idx), skipped


@pytest.mark.parametrize("prefix,start,end,num_samples,fixture", [
    ("sample", 0, 380, 120, "sample_train_indexmap_120ns_1234s"),
    ("sample", 380, 400, 12, "sample_valid_indexmap_12ns_1234s"),
    ("sample", 0, 400, 85, "sample_train_indexmap_85ns_1234s"),
    ("sample2", 0, 150, 37, "sample2_train_indexmap_37ns_1234s"),
])
def test_index_maps_match_the_fork_fixtures(fork_dir, prefix, start, end, num_samples, fixture):
    packed = build_packed_index(lengths_of(fork_dir, prefix), start, end, num_samples, ROW, SEED,
                                legacy_split_offsets=True)
    shuffle = np.load(fork_dir / f"{fixture}_decoder_packed_shuffle_idx.npy")
    batch = np.load(fork_dir / f"{fixture}_decoder_packed_batch_idx.npy")
    assert packed.shuffle_idx.dtype == shuffle.dtype == np.int64
    assert packed.batch_idx.dtype == batch.dtype == np.int64
    np.testing.assert_array_equal(packed.shuffle_idx, shuffle)
    np.testing.assert_array_equal(packed.batch_idx, batch)
    assert packed.epochs == len(shuffle) // (end - start)


def test_fixture_behaviours(fork_dir):
    lengths = lengths_of(fork_dir, "sample")
    train = build_packed_index(lengths, 0, 380, 120, ROW, SEED, legacy_split_offsets=True)
    assert train.num_rows == 192 and train.epochs == 1  # stops only after a whole epoch once > 120
    assert train.skipped_documents == [374] and train.skipped[0].length == 617
    docs = [list(train.shuffle_idx[s:e]) for s, e in train.batch_idx[:8]]
    assert docs == [[356, 318], [340], [91], [90, 73], [131, 272, 357], [64, 315, 184], [253], [7]]
    assert all(lengths[d].sum() <= ROW for d in docs)
    valid = build_packed_index(lengths, 380, 400, 12, ROW, SEED, legacy_split_offsets=True)
    assert valid.shuffle_idx.max() == 19  # the split-offset bug: documents 0..19, not 380..399
    assert list(valid.batch_idx[8]) == [19, 22]  # the open row carried across the epoch boundary


def test_default_reads_the_range_itself(fork_dir):
    lengths = lengths_of(fork_dir, "sample")
    legacy = build_packed_index(lengths, 380, 400, 12, ROW, SEED, legacy_split_offsets=True)
    honoured = build_packed_index(lengths, 380, 400, 12, ROW, SEED)
    np.testing.assert_array_equal(honoured.shuffle_idx, legacy.shuffle_idx + 380)
    assert honoured.shuffle_idx.min() == 380 and honoured.shuffle_idx.max() == 399
    for s, e in honoured.batch_idx:
        assert lengths[honoured.shuffle_idx[s:e]].sum() <= ROW
    train = build_packed_index(lengths, 0, 380, 120, ROW, SEED)
    np.testing.assert_array_equal(train.batch_idx,
                                  build_packed_index(lengths, 0, 380, 120, ROW, SEED, True).batch_idx)


@pytest.mark.parametrize("case", range(12))
def test_vectorised_walk_equals_the_forks_loop(case):
    rng = np.random.default_rng(case)
    n = int(rng.integers(1, 60))
    row = int(rng.integers(8, 40))
    lengths = rng.integers(0 if case % 3 == 0 else 1, row + (row if case % 2 else 2), size=n)
    lengths[rng.integers(0, n)] = min(lengths.min(), row)  # at least one pair fits
    num_samples = int(rng.integers(0, 80))
    shuffle, batch, skipped = fork_reference(lengths, n, num_samples, row, case)
    packed = build_packed_index(lengths, 0, n, num_samples, row, case, legacy_split_offsets=True)
    np.testing.assert_array_equal(packed.shuffle_idx, shuffle)
    np.testing.assert_array_equal(packed.batch_idx, batch)
    assert [s.document for s in packed.skipped] == skipped


def test_every_pair_too_long_is_an_error_not_an_endless_loop():
    with pytest.raises(PackingError, match="loop forever"):
        build_packed_index(np.array([300, 400]), 0, 2, 10, ROW, SEED)


def test_out_of_step_inputs_and_targets_are_refused():
    with pytest.raises(PackingError, match="out of step"):
        pair_lengths(np.array([1, 2]), np.array([1]))


def test_rows_per_epoch_counts_the_first_epoch(fork_dir):
    lengths = lengths_of(fork_dir, "sample")
    assert rows_per_epoch(lengths, 0, 380, ROW, SEED) == (192, 1)
    assert rows_per_epoch(lengths, 380, 400, ROW, SEED, legacy_split_offsets=True) == (8, 0)


def test_skipped_pairs_are_returned_not_only_logged():
    packed = build_packed_index(np.array([5, 500, 5, 5]), 0, 4, 0, 12, 0)
    assert packed.skipped_documents == [1] and packed.skipped[0].length == 500
