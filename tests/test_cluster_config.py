"""The run config's cluster: section and the model presets."""
import pytest

from runconfig import ConfigError, load_section
from runconfig.cluster_section import ClusterConfig
from runconfig.model_presets import PRESETS, preset
from runconfig.run_config import load_run_config
from runconfig.training_section import TrainingConfig


def _parameters(name: str) -> int:
    """GPT-BigCode parameter count from the shape (multi-query: one K and one V head; tied LM head)."""
    s = preset(name)
    h, f, head_dim = s.hidden_size, s.ffn_hidden_size, s.hidden_size // s.num_attention_heads
    per_layer = (h * (h + 2 * head_dim) + h + 2 * head_dim) + (h * h + h) + (2 * h * f + f + h) + 4 * h
    return s.num_layers * per_layer + (s.vocab_size + s.max_position_embeddings) * h + 2 * h


@pytest.mark.parametrize("name, billions", [("starcoderbase-1b", 1.1), ("starcoderbase-3b", 3.0),
                                            ("starcoderbase-7b", 7.2), ("starcoderbase", 15.5)])
def test_presets_have_the_advertised_sizes(name, billions):
    # the model cards' sizes; a wrong layer/hidden/ffn value moves the count far more than 5%
    assert abs(_parameters(name) / 1e9 - billions) / billions < 0.05
    shape = preset(name)
    assert shape.hidden_size % shape.num_attention_heads == 0 and shape.ffn_hidden_size == 4 * shape.hidden_size


def test_the_15b_preset_is_starcoderbase():
    s = PRESETS["starcoderbase"]
    assert (s.num_layers, s.hidden_size, s.num_attention_heads, s.ffn_hidden_size, s.max_position_embeddings,
            s.vocab_size) == (40, 6144, 48, 24576, 8192, 49152)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ConfigError, match="'starcoder-1b' is not a known preset .*starcoderbase-1b"):
        load_section(None, "training", TrainingConfig, ["training.model=starcoder-1b"])


def test_cluster_section_loads_and_checks(tmp_path):
    p = tmp_path / "run.yaml"
    p.write_text("cluster:\n  nodes: 4\n  gpus_per_node: 8\n  partition: gpu\n  time: '2-00:00:00'\n")
    cfg = load_run_config(p)
    assert (cfg.cluster.nodes, cfg.cluster.gpus_per_node, cfg.cluster.partition) == (4, 8, "gpu")
    for bad, message in [("time=24h", "not a SLURM time limit"), ("nodes=0", "must be >= 1"),
                         ("rdzv_port=70000", "must be >= 1 and <= 65535"), ("sbatch_args=[-x]", "write each option whole")]:
        with pytest.raises(ConfigError, match=message):
            load_run_config(p, [f"cluster.{bad}"])
    with pytest.raises(ConfigError, match="quote the time limit"):  # YAML 1.1 reads 24:00:00 as 86400
        load_section(None, "cluster", ClusterConfig, ["time=24:00:00"])
    for good in ("'30'", "'10:00'", "1-12", "'1-12:30:00'"):
        assert load_section(None, "cluster", ClusterConfig, [f"time={good}"]).time == good.strip("'")


def test_float16_is_only_for_the_fork():
    with pytest.raises(ConfigError, match="float16 is for the fork"):
        load_section(None, "training", TrainingConfig, ["dtype=float16"])
    assert load_section(None, "training", TrainingConfig, ["dtype=float16", "engine=megatron"]).dtype == "float16"
