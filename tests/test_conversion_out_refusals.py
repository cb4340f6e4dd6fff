"""Every conversion command leaves an ``--out`` alone that holds someone else's model config, weights or tracker.

A second test, independent of ``test_megatron_to_hf_output`` and ``test_attacks``, over every command that writes a
model folder or a checkpoint root (``megatron_to_hf``, ``hf_to_megatron``, ``prepare_release``, ``model_init``):
the command exits 2, names the folder, and every byte in it is as it was, with no temporary left beside it.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from transformers import GPTBigCodeConfig, GPTBigCodeForCausalLM

from conversion import hf_to_megatron, megatron_to_hf, prepare_release
from conversion.megatron_checkpoint import write_megatron_checkpoint
from tests.local_engine_fixtures import TOKENIZER
from training import model_init

FOREIGN = {
    # a model config someone wrote, without weights
    "config": {"config.json": b'{"model_type": "gpt_bigcode", "n_layer": 48, "note": "our production model"}\n'},
    # weights without a config: a download half-way, someone's export
    "weights": {"model.safetensors": b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ", "README.md": b"# ours\n"},
    # a training run's save folder: tracker and iteration
    "tracker": {"latest_checkpointed_iteration.txt": b"250\n", "iter_0000250/mp_rank_00/model_optim_rng.pt": b"x"},
}


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("sources")
    config = GPTBigCodeConfig(vocab_size=8192, n_positions=32, n_embd=16, n_layer=1, n_head=2, multi_query=True)
    model = GPTBigCodeForCausalLM(config)
    model.save_pretrained(root / "hf")
    state = {k: v.detach().clone() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    write_megatron_checkpoint(root / "trained", 5, state, config)
    return root


def _commands(sources: Path, out: Path) -> dict[str, tuple]:
    return {
        "megatron_to_hf": (megatron_to_hf.main, ["--megatron", str(sources / "trained"), "--out", str(out),
                                                 "--no-progress"]),
        "hf_to_megatron": (hf_to_megatron.main, ["--hf", str(sources / "hf"), "--out", str(out)]),
        "prepare_release": (prepare_release.main, ["--megatron", str(sources / "trained"), "--out", str(out)]),
        "model_init --out": (model_init.main, ["--tokenizer", str(TOKENIZER), "--out", str(out), "--layers", "1",
                                               "--hidden", "16", "--heads", "2"]),
        "model_init --hf-out": (model_init.main, ["--tokenizer", str(TOKENIZER), "--out", str(out.parent / "rel"),
                                                  "--hf-out", str(out), "--layers", "1", "--hidden", "16",
                                                  "--heads", "2"]),
    }


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("kind", sorted(FOREIGN))
@pytest.mark.parametrize("command", ["megatron_to_hf", "hf_to_megatron", "prepare_release", "model_init --out",
                                     "model_init --hf-out"])
def test_an_out_holding_someone_elses_config_weights_or_tracker_is_left_alone(sources, tmp_path, capsys, command,
                                                                              kind):
    out = tmp_path / "out"
    for name, data in FOREIGN[kind].items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(data)
    before = _snapshot(out)
    main, argv = _commands(sources, out)[command]
    assert main(argv) == 2
    assert str(out) in capsys.readouterr().err
    assert _snapshot(out) == before
    assert not [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name]
