"""The split tools in pretraining mode: ``--split 969,30,1`` ranges, samples per epoch, epochs, raw prefixes."""
import json
from pathlib import Path

import numpy as np

from dataset.splitting.split_files import parse_split_file, resolve_prefix
from dataset.splitting.split_planner import PlanSettings, plan_splits
from dataset.splitting.splits import main as splits_main

FIM_DIR = Path(__file__).parent / "fixtures" / "fork_fim"
PREFIX = FIM_DIR / "code_content_document"
VALID_MAP = "code_content_document_valid_indexmap_55ns_128sl_1234s_{}_idx.npy"


def test_plan_data_path_matches_the_fork_index_maps(tmp_path, capsys):
    out = tmp_path / "plan.json"
    # 7 iterations x 8 = 56 train samples; valid (7 // 10 + 1) x 7 x 8 = 56; test 7 x 8 = 56
    assert splits_main(["plan", "--data-path", str(PREFIX), "--split", "969,30,1", "--seq-length", "128",
                        "--train-iters", "7", "--global-batch-size", "8", "--eval-interval", "10",
                        "--eval-iters", "7", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "samples/epoch" in printed and "WARNING: EMPTY: test" in printed
    train, valid, test = json.loads(out.read_text())["ranges"]
    assert train["documents"] == [0, 291] and valid["documents"] == [291, 300] and test["documents"] == [300, 300]
    # the fixture README: one train epoch holds 920 samples (shuffle_idx has 920 entries); valid 3044 tokens, 23/epoch
    assert train["samples_per_epoch"] == len(np.load(FIM_DIR / "code_content_document_train_indexmap_240ns_128sl_"
                                                        "1234s_shuffle_idx.npy")) == 920
    assert (valid["tokens"], valid["samples_per_epoch"]) == (3044, 23)
    assert (train["num_samples"], valid["num_samples"], test["num_samples"]) == (56, 56, 56)
    assert train["epochs"] == 1 and test["epochs"] is None
    # 56 valid samples need 3 epochs (the fork's 55-sample map has 3: doc_idx is 3 x 9 documents); the last
    # has 56 - 47 = 9 samples, under int(0.8 * 23) = 18, so it is shuffled apart as in the fork's map
    assert len(np.load(FIM_DIR / VALID_MAP.format("doc"))) == 27
    assert valid["epochs"] == 3 and valid["separate_last_epoch"] is True


def test_split_files_with_a_raw_document_prefix(tmp_path, capsys):
    (tmp_path / "t.txt").write_text(f'"train: 1.0 0:0.97 {PREFIX.resolve()}"\n')
    (tmp_path / "v.txt").write_text(f'"valid: 1.0 0.97:1 {PREFIX.resolve()}"\n')
    assert splits_main(["check", str(tmp_path / "t.txt"), "--role", "train", "--check-files"]) == 0
    splits = {role: [(g, [resolve_prefix(d.prefix, tmp_path / f) for d in g.datasets])
                     for g in parse_split_file(tmp_path / f, role)] for role, f in (("train", "t.txt"), ("valid", "v.txt"))}
    plan = plan_splits(splits, PlanSettings(seq_length=128, train_iters=30, global_batch_size=8))
    train, valid = plan.datasets
    assert train.kind == valid.kind == "documents"
    assert train.document_range == (0, 291) and valid.document_range == (291, 300)  # round(0.97 * 300) = 291
    assert train.rows_per_epoch == 920 and train.epochs_needed == 1 and train.overlong_pairs == 0
    assert not plan.warnings  # the GPT dataset reads the real range: no range-bug warning
    (tmp_path / "bad.txt").write_text(f'"train: 1.0 0:1 {tmp_path}/nothing"\n')
    assert splits_main(["check", str(tmp_path / "bad.txt"), "--check-files"]) == 1


def test_plan_config_in_pretrain_mode_reads_the_training_section(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text(f"training:\n  mode: pretrain\n  seq_length: 128\n  train_iters: 30\n  global_batch_size: 8\n"
                      f"  pretrain:\n    data_path: {PREFIX}\n    split: '969,30,1'\n")
    assert splits_main(["plan", "--config", str(config), "--json", str(tmp_path / "p.json")]) == 0
    train = json.loads((tmp_path / "p.json").read_text())["ranges"][0]
    assert train["num_samples"] == 240 and train["epochs"] == 1 and train["documents"] == [0, 291]
    config.write_text("training:\n  mode: pretrain\n")
    assert splits_main(["plan", "--config", str(config)]) == 2
    assert "training.pretrain.data_path is empty" in capsys.readouterr().err
