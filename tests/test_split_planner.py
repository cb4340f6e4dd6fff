"""Planner: documents, tokens, rows, over-long pairs and epochs per dataset; loud overlap warnings."""
import json

import numpy as np

from dataset.split_files import parse_split_file, resolve_prefix
from dataset.split_planner import PlanSettings, plan_splits
from dataset.splits import main as splits_main


def load(path, role):
    return [(g, [resolve_prefix(d.prefix, path) for d in g.datasets]) for g in parse_split_file(path, role)]


def test_plan_counts_on_the_fork_fixtures(fork_dir):
    splits = {"train": load(fork_dir / "train_blend_data_paths.txt", "train")}
    plan = plan_splits(splits, PlanSettings(seq_length=256, seed=1234, train_iters=15, global_batch_size=8))
    sample, sample2 = plan.datasets
    # README: 23,033 input and 17,636 target tokens; the .bin files hold 2 bytes per token
    assert (sample.input_tokens, sample.target_tokens) == (23033, 17636)
    assert sample2.tokens == ((fork_dir / "sample2_inputs_document.bin").stat().st_size
                              + (fork_dir / "sample2_targets_document.bin").stat().st_size) // 2
    assert (sample.documents, sample2.documents) == (400, 150)
    assert (sample.num_samples, sample2.num_samples) == (85, 37)  # ceil(120 * w * 1.005)
    rows = np.load(fork_dir / "sample_train_indexmap_85ns_1234s_decoder_packed_batch_idx.npy")
    assert sample.rows_built == len(rows) == 207 and sample.epochs_needed == 1
    assert sample.overlong_pairs == 1 and sample2.overlong_pairs == 0
    assert any("SKIPPED" in w for w in plan.warnings)


def test_valid_epochs_and_the_fork_range_bug_warning(fork_dir):
    splits = {"train": load(fork_dir / "train_data_paths.txt", "train"),
              "valid": load(fork_dir / "valid_data_paths.txt", "valid")}
    settings = PlanSettings(seq_length=256, train_iters=15, global_batch_size=8, eval_interval=10, eval_iters=1,
                            legacy_split_offsets=True)
    assert settings.num_samples("valid") == 16  # (15 // 10 + 1) * 1 * 8
    plan = plan_splits(splits, settings)
    train, valid = plan.datasets
    assert (train.documents, valid.documents) == (380, 20)
    assert valid.documents_read == (0, 20)  # what the fork really reads
    assert train.rows_per_epoch == 192
    assert [w for w in plan.warnings if "FORK RANGE BUG" in w and "[0, 20)" in w]
    assert not [w for w in plan.warnings if w.startswith("OVERLAP")]


def test_real_overlap_and_no_warning_when_held_out(fork_dir, tmp_path):
    (tmp_path / "t.txt").write_text(f'"train: 1.0 0:0.6 {fork_dir.resolve()}/sample"\n')
    (tmp_path / "v.txt").write_text(f'"valid: 1.0 0.5:1 {fork_dir.resolve()}/sample"\n')
    (tmp_path / "v2.txt").write_text(f'"valid: 1.0 0:1 {fork_dir.resolve()}/sample2"\n')
    settings = PlanSettings(seq_length=256)
    plan = plan_splits({"train": load(tmp_path / "t.txt", "train"), "valid": load(tmp_path / "v.txt", "valid")}, settings)
    assert [w for w in plan.warnings if w.startswith("OVERLAP") and "[200, 400)" in w]
    plan = plan_splits({"train": load(tmp_path / "t.txt", "train"), "valid": load(tmp_path / "v2.txt", "valid")}, settings)
    assert not [w for w in plan.warnings if "OVERLAP" in w or "BUG" in w]


def test_plan_cli_from_files_and_from_the_run_config(fork_dir, tmp_path, capsys):
    out = tmp_path / "plan.json"
    argv = ["plan", "--train", str(fork_dir / "train_data_paths.txt"), "--valid", str(fork_dir / "valid_data_paths.txt"),
            "--seq-length", "256", "--train-iters", "15", "--global-batch-size", "8", "--json", str(out)]
    assert splits_main(argv) == 0
    printed = capsys.readouterr().out
    assert "FORK RANGE BUG" in printed and "rows/epoch" in printed
    saved = json.loads(out.read_text())
    assert saved["row_length"] == 257 and saved["datasets"][0]["epochs_needed"] == 1
    for bad in (["--seq-length", "-3"], ["--seq-length", "256", "--train-iters", "-2"], []):
        assert splits_main(["plan", "--train", str(fork_dir / "train_data_paths.txt"), *bad]) == 1
    assert "seq_length must be positive" in capsys.readouterr().err
    data = tmp_path / "data"
    data.mkdir()
    for path in fork_dir.glob("sample*_document.*"):
        (data / path.name).symlink_to(path.resolve())
    config = tmp_path / "run.yaml"
    config.write_text(f"splits:\n  train: ['0.7 0:1 sample', '0.3 0:1 sample2']\n  out_dir: {data}\n"
                      "training:\n  seq_length: 256\n  train_iters: 15\n  global_batch_size: 8\n")
    assert splits_main(["plan", "--config", str(config)]) == 0
    saved = json.loads((data / "split_plan.json").read_text())
    assert [d["num_samples"] for d in saved["datasets"]] == [85, 37]
    assert splits_main(["write", "--config", str(config), "--keep-relative"]) == 0
    assert (data / "train_data_paths.txt").read_bytes() == (fork_dir / "train_blend_data_paths.txt").read_bytes()
    assert splits_main(["write", "--config", str(config)]) == 0  # by default, absolute: next to out_dir
    assert (data / "train_data_paths.txt").read_text() == f'"train: 0.7 0:1 {data}/sample, 0.3 0:1 {data}/sample2"\n'
    assert splits_main(["plan", "--config", str(config), "training.seq_length=0"]) == 1
    capsys.readouterr()
    # the run parameters live in training: only; splits: has no such key
    assert splits_main(["plan", "--config", str(config), "splits.seq_length=256"]) == 1
    assert "unknown key 'seq_length' in section 'splits'" in capsys.readouterr().err


def test_plan_from_a_config_without_a_splits_section_is_an_error(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("training:\n  lr: 1.0e-4\n")
    assert splits_main(["plan", "--config", str(config)]) != 0
    assert f"{config}: no splits.train or splits.valid entries" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.json"))


def test_plan_says_how_it_counts_validation_samples_and_what_the_engine_reads(fork_dir, tmp_path, capsys):
    argv = ["plan", "--train", str(fork_dir / "train_data_paths.txt"), "--valid", str(fork_dir / "valid_data_paths.txt"),
            "--seq-length", "256", "--train-iters", "60", "--global-batch-size", "8", "--eval-interval", "20",
            "--eval-iters", "4", "--json", str(tmp_path / "plan.json")]
    assert splits_main(argv) == 0
    printed = capsys.readouterr().out
    assert "valid samples 128" in printed  # (60 // 20 + 1) x 4 x 8, by hand
    assert "(60 // 20 + 1) x 4 x 8" in printed and "the local engine reads only the first" in printed
    assert "eval_iters x global_batch_size = 32 at every evaluation" in printed


def test_an_over_long_validation_pair_is_never_evaluated_on(fork_dir, tmp_path):
    valid = tmp_path / "valid.txt"
    valid.write_text(f'"valid: 1.0 0.9:1 {fork_dir.resolve()}/sample"\n')  # documents 360..399 hold 374 (617 tokens)
    plan = plan_splits({"train": load(fork_dir / "train_data_paths.txt", "train"), "valid": load(valid, "valid")},
                       PlanSettings(seq_length=256))
    skipped = sorted(w for w in plan.warnings if w.startswith("SKIPPED"))
    assert len(skipped) == 2
    assert skipped[0].startswith("SKIPPED: 1 pair(s) of train/train") and skipped[0].endswith("never trained on")
    assert skipped[1].startswith("SKIPPED: 1 pair(s) of valid/valid") and skipped[1].endswith("never evaluated on")


def test_the_plan_reads_0_to_0_95_of_50_documents_as_48(fork_dir, tmp_path):
    from dataset.preprocess import main as preprocess_main

    lines = (fork_dir / "sample.jsonl").read_text().splitlines()[:50]
    (tmp_path / "fifty.jsonl").write_text("\n".join(lines) + "\n")
    assert preprocess_main(["--input", str(tmp_path / "fifty.jsonl"), "--tokenizer", str(fork_dir / "tokenizer.json"),
                            "--output-prefix", str(tmp_path / "fifty"), "--workers", "1"]) == 0
    prefix = tmp_path / "fifty"
    (tmp_path / "train.txt").write_text(f'"train: 1.0 0:0.95 {prefix}"\n')
    (tmp_path / "valid.txt").write_text(f'"valid: 1.0 0.95:1 {prefix}"\n')
    splits = {"train": load(tmp_path / "train.txt", "train"), "valid": load(tmp_path / "valid.txt", "valid")}
    train, valid = plan_splits(splits, PlanSettings(seq_length=2048)).datasets
    assert (train.document_range, train.documents) == ((0, 48), 48)  # round(47.5) = 48, as the fork rounds
    assert (valid.document_range, valid.documents) == ((48, 50), 2)
