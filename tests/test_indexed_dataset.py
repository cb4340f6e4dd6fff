"""The MMIDIDX writer/reader: fork bytes, batch writes, megatron-core reads what preprocess writes."""
import filecmp
import io
import struct
import warnings

import numpy as np
import pytest

from dataset.formats.indexed_dataset import (
    IndexedDataset, IndexedDatasetWriter, IndexFormatError, encode_index, remove_dataset, token_dtype, write_index,
)
from dataset.preprocessing.preprocess import main


def test_rewriting_the_fork_files_gives_the_same_bytes(fork_dir, tmp_path):
    for role in ("inputs", "targets"):
        fork = IndexedDataset(fork_dir / f"sample_{role}_document")
        one_by_one = IndexedDatasetWriter(tmp_path / f"a_{role}", fork.dtype)
        batched = IndexedDatasetWriter(tmp_path / f"b_{role}", fork.dtype)
        for i in range(len(fork)):
            one_by_one.add(fork[i])
        cut = 123  # two batches of different sizes
        batched.add_batch(np.concatenate([fork[i] for i in range(cut)]), fork.sizes[:cut])
        batched.add_batch(np.concatenate([fork[i] for i in range(cut, len(fork))]), fork.sizes[cut:])
        for writer in (one_by_one, batched):
            writer.finalize()
            writer.commit()
            for ext in ("bin", "idx"):
                assert filecmp.cmp(f"{writer.prefix}.{ext}", fork_dir / f"sample_{role}_document.{ext}", shallow=False)


def test_header_layout_is_the_documented_one(fork_dir):
    raw = (fork_dir / "sample_inputs_document.idx").read_bytes()
    assert raw[:9] == b"MMIDIDX\x00\x00" and struct.unpack("<Q", raw[9:17]) == (1,) and raw[17] == 8
    assert struct.unpack("<QQ", raw[18:34]) == (400, 401) and len(raw) == 34 + 12 * 400 + 8 * 401
    sizes = np.frombuffer(raw, "<i4", 400, 34)
    assert encode_index(np.uint16, sizes) == raw
    blocks = io.BytesIO()
    write_index(blocks, np.uint16, sizes, block=7)  # block by block, as for very large datasets
    assert blocks.getvalue() == raw
    assert token_dtype(65_499) == np.uint16 and token_dtype(65_500) == np.int32


def test_add_batch_rejects_sizes_that_do_not_add_up(tmp_path):
    writer = IndexedDatasetWriter(tmp_path / "x", np.uint16)
    with pytest.raises(ValueError, match="sizes add up to 4 tokens, got 5"):
        writer.add_batch(np.arange(5), np.array([2, 2]))
    writer.abort()
    assert not list(tmp_path.iterdir())


def test_reader_rejects_incomplete_datasets(fork_dir, tmp_path):
    idx = (fork_dir / "sample2_inputs_document.idx").read_bytes()
    data = (fork_dir / "sample2_inputs_document.bin").read_bytes()
    (tmp_path / "cut.idx").write_bytes(idx[:-8])
    (tmp_path / "cut.bin").write_bytes(data)
    (tmp_path / "short.idx").write_bytes(idx)
    (tmp_path / "short.bin").write_bytes(data[:-2])
    for prefix in ("cut", "short"):
        with pytest.raises(IndexFormatError):
            IndexedDataset(tmp_path / prefix)
    remove_dataset(tmp_path / "short")
    assert not (tmp_path / "short.idx").exists() and not (tmp_path / "short.bin").exists()


def test_megatron_core_reads_what_preprocess_writes(fork_dir, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # megatron-core warns that Apex/Transformer Engine are missing
        from megatron.core.datasets.indexed_dataset import IndexedDataset as CoreIndexedDataset
    prefix = tmp_path / "s"
    assert main(["--input", str(fork_dir / "sample.jsonl"), "--tokenizer", str(fork_dir / "tokenizer.json"),
                 "--output-prefix", str(prefix), "--valid-count", "40"]) == 0
    for name in ("s_inputs_document", "s_targets_document", "s_valid_inputs_document", "s_valid_targets_document"):
        ours, core = IndexedDataset(tmp_path / name), CoreIndexedDataset(str(tmp_path / name))
        assert len(core) == len(ours) and core.index.dtype == np.uint16
        assert np.array_equal(core.sequence_lengths, ours.sizes)
        assert np.array_equal(core.document_indices, np.arange(len(ours) + 1))
        for i in range(len(ours)):
            assert np.array_equal(core[i], ours[i])
        assert np.array_equal(core.get(3, offset=1, length=2), ours.get(3, offset=1, length=2))
