"""The run config: strict sections, overrides, and every shipped config loads."""
from pathlib import Path

import pytest

from dataset.splitting.splits import SPLIT_FILE_NAMES
from runconfig import ConfigError, load_section
from runconfig.data_section import DataConfig
from runconfig.run_config import load_run_config
from runconfig.training_section import TrainingConfig

CONFIGS = sorted((Path(__file__).resolve().parent.parent / "scripts" / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_loads(path):
    cfg = load_run_config(path)
    assert cfg.training.global_batch_size % cfg.training.micro_batch_size == 0
    if cfg.splits.train:  # the split files written must be the ones the training section reads
        out_dir = Path(cfg.splits.out_dir)
        assert Path(cfg.training.train_split_file) == out_dir / SPLIT_FILE_NAMES["train"]
        if cfg.splits.valid:
            assert Path(cfg.training.valid_split_file) == out_dir / SPLIT_FILE_NAMES["valid"]


def test_shipped_configs_exist():
    assert CONFIGS, "scripts/configs/ must ship at least one run config"


def test_unknown_key_names_key_and_section(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data:\n  tokeniser: x.json\n")
    with pytest.raises(ConfigError, match=r"unknown key 'tokeniser' in section 'data'"):
        load_section(p, "data", DataConfig)


def test_unknown_section_is_an_error(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("trainig:\n  lr: 1\n")
    with pytest.raises(ConfigError, match="unknown section 'trainig'"):
        load_run_config(p)


def test_overrides_are_typed_and_applied(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("training:\n  lr: 1.0e-4\n  lora:\n    rank: 4\n")
    cfg = load_section(p, "training", TrainingConfig, ["training.train_iters=7", "lr=3e-4", "data.workers=9"])
    assert cfg.train_iters == 7 and cfg.lr == 3e-4 and cfg.lora.rank == 4
    with pytest.raises(ConfigError, match="expected an integer"):
        load_section(p, "training", TrainingConfig, ["training.train_iters=seven"])


def test_configs_are_frozen():
    cfg = load_section(None, "data", DataConfig)
    with pytest.raises(AttributeError):
        cfg.workers = 3  # type: ignore[misc]


def test_cross_field_validation_is_reported(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("training:\n  micro_batch_size: 3\n  global_batch_size: 8\n")
    with pytest.raises(ConfigError, match="not a multiple"):
        load_section(p, "training", TrainingConfig)


def test_a_bad_shard_size_is_refused_when_the_config_loads(tmp_path):
    from runconfig.conversion_section import ConversionConfig

    p = tmp_path / "c.yaml"
    p.write_text("conversion:\n  max_shard_size: 2 gigs\n")
    with pytest.raises(ConfigError, match="max_shard_size '2 gigs'"):
        load_section(p, "conversion", ConversionConfig)
    assert load_section(None, "conversion", ConversionConfig, ["max_shard_size=1GiB"]).max_shard_size == "1GiB"


def test_a_section_that_is_not_a_mapping_is_one_clear_error(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("training:\n  lr: 1.0e-4\ndata: 5\n")
    for load in (lambda: load_run_config(p), lambda: load_section(p, "data", DataConfig),
                 lambda: load_section(p, "training", TrainingConfig)):
        with pytest.raises(ConfigError, match=rf"^{p}:3: section 'data' must be a mapping of keys .*got 5$"):
            load()


def test_a_misspelled_section_stops_a_command_that_reads_another_one(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data:\n  workers: 2\n\ntrainng:\n  lr: 1.0e-4\n")
    with pytest.raises(ConfigError, match=rf"^{p}:4: unknown section 'trainng'"):
        load_section(p, "data", DataConfig)
    with pytest.raises(ConfigError, match=rf"^{p}:4: unknown section 'trainng'"):
        load_run_config(p)


def test_an_error_in_another_section_stops_the_command_before_any_work(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data:\n  workers: 2\ntraining:\n  train_iters: 5\n  global_batch_size: 8\n  lr_warmup_samples: 40\n")
    with pytest.raises(ConfigError, match=rf"^{p}:3: training: lr_decay_samples \(40 = train_iters x global_batch_size\)"
                                          r" must exceed lr_warmup_samples \(40\)"):
        load_section(p, "data", DataConfig)
    assert load_section(p, "data", DataConfig, ["training.train_iters=6"]).workers == 2  # an override fixes it
    p.write_text("training:\n  lr: 1.0e-4\n\n  train_iters: ten\n")
    with pytest.raises(ConfigError, match=rf"^{p}:4: training.train_iters: expected an integer, got 'ten'$"):
        load_section(p, "data", DataConfig)


@pytest.mark.parametrize("text,line,key", [
    ("data:\n  workers: 2\n  workers: 3\n", 3, "workers"),
    ("data:\n  workers: 2\ntraining:\n  lr: 1.0e-4\ndata:\n  workers: 3\n", 5, "data"),
    ("training:\n  lora:\n    rank: 4\n    rank: 8\n", 4, "rank"),
])
def test_a_key_written_twice_names_the_file_and_line(tmp_path, text, line, key):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=rf"^{p}:{line}: key '{key}' is written twice"):
        load_section(p, "training", TrainingConfig)


def test_yaml_anchors_still_share_one_value(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data:\n  tokenizer: &tok t/tokenizer.json\ntraining:\n  tokenizer: *tok\n")
    assert load_run_config(p).training.tokenizer == load_run_config(p).data.tokenizer == "t/tokenizer.json"


def test_the_preprocess_command_checks_the_whole_config_too(tmp_path, capsys):
    from dataset.preprocessing.preprocess import main as preprocess_main

    p = tmp_path / "c.yaml"
    p.write_text("data:\n  workers: 1\ntrainng:\n  lr: 1\n")
    assert preprocess_main(["--config", str(p)]) == 2
    assert f"{p}:3: unknown section 'trainng'" in capsys.readouterr().err


def test_duplicate_json_keys_name_the_file_and_line(tmp_path):
    from runconfig.strict_json import StrictJSONError, read_json_strict

    p = tmp_path / "m.json"
    p.write_text('{\n  "a": {"x": 1, "y": {"x": 2}},\n  "b": 1,\n  "a": 2\n}\n')
    with pytest.raises(StrictJSONError, match=rf"^{p}:4: key 'a' appears twice"):
        read_json_strict(p)
    p.write_text('{"outer": {\n  "x": 1,\n  "inner": {"x": 5},\n  "x": 2}}')
    with pytest.raises(StrictJSONError, match=rf"^{p}:4: key 'x' appears twice"):
        read_json_strict(p)
    p.write_text('{"a": [1, {"b": 2}], "c": "\\"a\\": 1"}')
    assert read_json_strict(p) == {"a": [1, {"b": 2}], "c": '"a": 1'}
