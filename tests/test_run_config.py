"""The run config: strict sections, overrides, and every shipped config loads."""
from pathlib import Path

import pytest

from dataset.splits import SPLIT_FILE_NAMES
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
