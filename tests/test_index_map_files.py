"""The fork's index maps next to the data: preprocess removes a replaced prefix's, preflight refuses stale ones.

The maps are built by ``training.packing`` into the data's folder, byte-identical to the fork's and named as it
names them (``PREFIX_GROUP_indexmap_Nns_Ss_decoder_packed_{batch,shuffle}_idx.npy``), so the names the tests
see are the ones the fork would reuse.
"""
import os
import shutil

from dataset.formats.index_map_files import map_owner
from dataset.preprocessing.preprocess import main as preprocess
from runconfig import load_section
from runconfig.training_section import TrainingConfig
from tests.conftest import FORK_FIXTURES
from tests.local_engine_fixtures import TOKENIZER
from training.samples.packing import main as packing
from training.cluster.preflight import check_splits


def _preprocess(source, prefix, *extra):
    assert preprocess(["--input", str(FORK_FIXTURES / source), "--tokenizer", str(TOKENIZER), "--output-prefix",
                       str(prefix), "--workers", "1", *extra]) == 0


def _maps(folder, split_file, samples=16, seq_length=256):
    assert packing(["--split-file", str(split_file), "--seq-length", str(seq_length), "--seed", "1234",
                    "--num-samples", str(samples), "--cache-dir", str(folder)]) == 0
    return sorted(p.name for p in folder.glob("*_indexmap_*.npy"))


def test_a_map_belongs_to_the_longest_dataset_name_it_starts_with():
    names = {"d/pairs", "d/pairs_valid", "d/pairs_inputs_document"}
    assert map_owner("d/pairs_valid_valid_indexmap_12ns_1234s_decoder_packed_batch_idx.npy", names) == "d/pairs_valid"
    assert map_owner("d/pairs_train_indexmap_16ns_1234s_decoder_packed_shuffle_idx.npy", names) == "d/pairs"
    assert map_owner("d/pairs_train_indexmap_16ns_256sl_1234s_doc_idx.npy", names) == "d/pairs"
    assert map_owner("d/pairs_train_notes.npy", names) is None and map_owner("d/x_train_indexmap_1ns_1s_doc_idx.npy",
                                                                           names) is None


def test_preprocess_removes_the_maps_of_the_prefix_it_replaces_and_says_so(tmp_path, capsys):
    data = tmp_path / "data"
    _preprocess("sample.jsonl", data / "pairs", "--valid-fraction", "0.2")
    _preprocess("sample2.jsonl", data / "pairs_extra")  # another dataset whose name starts with "pairs_"
    (data / "train.txt").write_text(f'"train: 1.0 0:1 {data}/pairs, 1.0 0:1 {data}/pairs_extra"\n')
    (data / "valid.txt").write_text(f'"valid: 1.0 0:1 {data}/pairs_valid"\n')
    _maps(data, data / "train.txt")
    built = _maps(data, data / "valid.txt")
    assert len(built) == 6  # pairs_train, pairs_extra_train, pairs_valid_valid: batch + shuffle each
    (data / "pairs_train_notes.npy").write_bytes(b"the user's")
    capsys.readouterr()
    _preprocess("sample2.jsonl", data / "pairs", "--valid-fraction", "0.2")  # the prefix is rewritten
    out = capsys.readouterr().out
    left = sorted(p.name for p in data.glob("*.npy"))
    assert left == sorted([n for n in built if n.startswith("pairs_extra_")] + ["pairs_train_notes.npy"])
    gone = sorted(set(built) - set(left))
    assert len(gone) == 4 and f"removed 4 index map(s) of the replaced data (the fork would reuse them by name):" \
        f" {', '.join(gone)}" in out


def _cfg(data, seq_length=256):
    return load_section(None, "training", TrainingConfig, [
        "engine=megatron", f"train_split_file={data / 'train.txt'}", f"valid_split_file={data / 'valid.txt'}",
        f"seq_length={seq_length}"])


def _stale(findings):
    return [f.message for f in findings if f.error and "stale index map" in f.message]


def test_preflight_refuses_maps_older_than_their_data_or_indexing_other_documents(tmp_path):
    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    _preprocess("sample2.jsonl", elsewhere / "pairs")  # older data, made first
    _preprocess("sample.jsonl", data / "pairs", "--valid-fraction", "0.2")
    (data / "train.txt").write_text(f'"train: 1.0 0:1 {data}/pairs"\n')
    (data / "valid.txt").write_text(f'"valid: 1.0 0:1 {data}/pairs_valid"\n')
    _maps(data, data / "train.txt")
    assert _stale(check_splits(_cfg(data), None, fork=True)) == []  # fresh maps
    # the data replaced by files older than the maps (a copy that kept its times): the maps name documents that
    # the data no longer has (sample2: 150 documents, sample's train part: about 320)
    for path in elsewhere.glob("pairs_*_document.*"):
        shutil.copy2(path, data / path.name)
    stale = _stale(check_splits(_cfg(data), None, fork=True))
    assert len(stale) == 1 and "pairs_train_indexmap_16ns_1234s_decoder_packed_shuffle_idx.npy: indexes document" in \
        stale[0] and "the data has 150 documents: the fork would reuse it; delete it" in stale[0]
    # data rewritten after the maps were built
    later = os.stat(data / "train.txt").st_mtime + 10
    for path in data.glob("pairs_*_document.*"):
        os.utime(path, (later, later))
    stale = _stale(check_splits(_cfg(data), None, fork=True))
    assert len(stale) == 2 and all("older than the data it indexes" in m for m in stale)
    assert _stale(check_splits(_cfg(data), None, fork=False)) == []  # the local engine keys its own maps


def test_preflight_refuses_maps_packed_for_another_seq_length(tmp_path):
    """The packed maps' names hold samples and seed, not the row length: a run with another seq_length (same
    samples, same seed) would reuse them by name. Maps built for each length pass for that length only."""
    data = tmp_path / "data"
    _preprocess("sample.jsonl", data / "pairs", "--valid-fraction", "0.2")
    (data / "train.txt").write_text(f'"train: 1.0 0:1 {data}/pairs"\n')
    (data / "valid.txt").write_text(f'"valid: 1.0 0:1 {data}/pairs_valid"\n')
    built = _maps(data, data / "train.txt", seq_length=256)
    assert _stale(check_splits(_cfg(data, 256), None, fork=True)) == []
    stale = _stale(check_splits(_cfg(data, 64), None, fork=True))  # rows of 257 tokens, the run packs 65
    assert len(stale) == 1 and "pairs_train_indexmap_16ns_1234s_decoder_packed_batch_idx.npy: row 0 packs" in \
        stale[0] and "more than the 65 of seq_length 64 (built for a longer seq_length)" in stale[0]
    for name in built:
        (data / name).unlink()
    assert _maps(data, data / "train.txt", seq_length=64) == built  # the same names for seq 64
    assert _stale(check_splits(_cfg(data, 64), None, fork=True)) == []
    stale = _stale(check_splits(_cfg(data, 256), None, fork=True))  # rows of 65 tokens, the run packs 257
    assert len(stale) == 1 and "would have taken the next document" in stale[0] and \
        "(built for a shorter seq_length)" in stale[0]
