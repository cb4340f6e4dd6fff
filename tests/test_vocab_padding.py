"""The fork's vocab padding: odd vocabs round-trip HF -> Megatron (TP 1/2/3, PP 1/2) -> HF bit for bit, the
padding rows are zeros split across TP ranks, the divisor is the configured one, and checkpoints the fork
saved (vocab 515 padded to 640 / 768) convert to HF models of vocab 515."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import GPTBigCodeConfig, GPTBigCodeForCausalLM

from conversion import hf_to_megatron, megatron_to_hf
from conversion.checkpoint_format import load_checkpoint_file, rank_dir_name
from conversion.vocab_padding import padded_vocab_size, real_vocab_size

FORK_CKPT = Path(__file__).parent / "fixtures" / "fork" / "checkpoint"
EMB = ("model", "language_model", "embedding", "word_embeddings", "weight")


def _hf_model(folder: Path, vocab: int, seed: int = 3) -> Path:
    torch.manual_seed(seed)
    config = GPTBigCodeConfig(vocab_size=vocab, n_positions=16, n_embd=48, n_layer=2, n_head=6, n_inner=96,
                              multi_query=True, activation_function="gelu_pytorch_tanh", bos_token_id=0,
                              eos_token_id=0)
    model = GPTBigCodeForCausalLM(config)
    with torch.no_grad():  # norms and biases are constants at init; random values make mix-ups show
        for param in model.parameters():
            if param.dim() == 1:
                param.copy_(torch.randn_like(param))
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def hf_515(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _hf_model(tmp_path_factory.mktemp("hf515"), 515)


def _tensors(folder: Path) -> dict[str, torch.Tensor]:
    tensors: dict[str, torch.Tensor] = {}
    for path in sorted(folder.glob("*.safetensors")):
        tensors.update(load_file(path))
    tensors.pop("lm_head.weight", None)
    return tensors


def _get(ckpt: dict, path: tuple[str, ...]) -> torch.Tensor:
    for key in path:
        ckpt = ckpt[key]
    return ckpt  # type: ignore[return-value]


def test_padded_size_is_the_forks_rule() -> None:
    # Hand-worked: 515 -> 640 (5 x 128) at tp=1, 768 (3 x 256) at tp=2, 768 (2 x 384) at tp=3; 49152 stays.
    assert [padded_vocab_size(515, 128, tp) for tp in (1, 2, 3)] == [640, 768, 768]
    assert padded_vocab_size(49152, 128, 4) == 49152 and padded_vocab_size(49153, 128, 1) == 49280
    assert padded_vocab_size(97, 1, 3) == 99


@pytest.mark.parametrize("pp", [1, 2])
@pytest.mark.parametrize("tp", [1, 2, 3])
def test_odd_vocab_roundtrip_is_bitwise(hf_515: Path, tmp_path: Path, tp: int, pp: int) -> None:
    hf_to_megatron.convert(hf_515, tmp_path / "m", tp=tp, pp=pp)
    padded = {1: 640, 2: 768, 3: 768}[tp]
    original = _tensors(hf_515)
    wte = original["transformer.wte.weight"]
    shards = []
    for t in range(tp):
        first = load_checkpoint_file(tmp_path / "m/release" / rank_dir_name(t, 0, pp) / "model_optim_rng.pt")
        args = first["args"]
        assert (args.padded_vocab_size, args.make_vocab_size_divisible_by, args.true_vocab_size) == (padded, 128, 515)
        shards.append(_get(first, EMB))
        assert shards[-1].shape == (padded // tp, 48)
        if pp == 2:  # the last stage's copy of the tied head is padded and split the same way
            last = load_checkpoint_file(tmp_path / "m/release" / rank_dir_name(t, 1, pp) / "model_optim_rng.pt")
            assert torch.equal(last["model"]["word_embeddings_for_head"]["weight"], shards[-1])
    merged = torch.cat(shards)
    assert torch.equal(merged[:515], wte)
    assert torch.count_nonzero(merged[515:]) == 0  # padding rows are zeros
    megatron_to_hf.convert(tmp_path / "m", tmp_path / "back", progress=False)
    back = _tensors(tmp_path / "back")
    assert sorted(back) == sorted(original)
    for name, tensor in original.items():
        assert back[name].dtype == tensor.dtype and torch.equal(back[name], tensor), name
    config = json.loads((tmp_path / "back/config.json").read_text())
    assert config["vocab_size"] == 515
    manifest = json.loads((tmp_path / "back/conversion_manifest.json").read_text())
    assert (manifest["vocab_size"], manifest["padded_vocab_size"]) == (515, padded)


def test_divisor_comes_from_the_run_config(tmp_path: Path) -> None:
    hf = _hf_model(tmp_path / "hf", 97)
    run = tmp_path / "run.yaml"
    run.write_text("conversion:\n  tp: 3\n  make_vocab_size_divisible_by: 8\n")
    assert hf_to_megatron.main(["--hf", str(hf), "--out", str(tmp_path / "a"), "--config", str(run)]) == 0
    args = load_checkpoint_file(tmp_path / "a/release/mp_rank_02/model_optim_rng.pt")["args"]
    assert (args.make_vocab_size_divisible_by, args.padded_vocab_size, args.tensor_model_parallel_size) == (8, 120, 3)
    assert hf_to_megatron.main(["--hf", str(hf), "--out", str(tmp_path / "b"), "--config", str(run),
                                "conversion.make_vocab_size_divisible_by=1"]) == 0
    args = load_checkpoint_file(tmp_path / "b/release/mp_rank_00/model_optim_rng.pt")["args"]
    assert (args.make_vocab_size_divisible_by, args.padded_vocab_size) == (1, 99)
    assert hf_to_megatron.main(["--hf", str(hf), "--out", str(tmp_path / "c"), "--tp", "1"]) == 0  # default 128
    args = load_checkpoint_file(tmp_path / "c/release/mp_rank_00/model_optim_rng.pt")["args"]
    assert (args.make_vocab_size_divisible_by, args.padded_vocab_size) == (128, 128)
    megatron_to_hf.convert(tmp_path / "a", tmp_path / "back", progress=False)
    assert torch.equal(_tensors(tmp_path / "back")["transformer.wte.weight"], _tensors(hf)["transformer.wte.weight"])


@pytest.mark.parametrize("tree, tp, pp, padded", [("tp1pp1", 1, 1, 640), ("tp2pp2", 2, 2, 768)])
def test_fork_saved_checkpoint_converts_to_the_real_vocab(tmp_path: Path, tree: str, tp: int, pp: int,
                                                          padded: int) -> None:
    root = tmp_path / tree
    shutil.copytree(FORK_CKPT / tree, root)
    out = megatron_to_hf.convert(root, tmp_path / "hf", tokenizer=FORK_CKPT / "tokenizer.json", progress=False)
    assert json.loads((out / "config.json").read_text())["vocab_size"] == 515
    tag = next(root.glob("iter_*"))
    rows = torch.cat([_get(load_checkpoint_file(tag / rank_dir_name(t, 0, pp) / "model_optim_rng.pt"), EMB)
                      for t in range(tp)])
    assert rows.shape[0] == padded and torch.count_nonzero(rows[515:]) > 0  # the fork's padding rows are random
    assert torch.equal(_tensors(out)["transformer.wte.weight"], rows[:515])
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.vocab_size == len(AutoTokenizer.from_pretrained(out)) == 515
    assert model.lm_head.weight.shape == (515, 96)


def test_without_tokenizer_or_record_every_row_is_kept_with_a_warning(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture) -> None:
    shutil.copytree(FORK_CKPT / "tp1pp1", tmp_path / "m")
    out = megatron_to_hf.convert(tmp_path / "m", tmp_path / "hf", progress=False)
    assert json.loads((out / "config.json").read_text())["vocab_size"] == 640
    assert "keeping all 640 rows" in capsys.readouterr().err


def test_real_vocab_precedence() -> None:
    assert real_vocab_size(640, 515, None) == (515, None)
    assert real_vocab_size(640, None, 515) == (515, None)
    size, warning = real_vocab_size(640, 515, 520)
    assert size == 515 and "520 tokens" in str(warning)
    size, warning = real_vocab_size(512, None, 8192)  # a tokenizer larger than the model is reported, not used
    assert size == 512 and "8192 tokens" in str(warning)
    with pytest.raises(ValueError, match="true_vocab_size is 700"):
        real_vocab_size(640, 700, None)
