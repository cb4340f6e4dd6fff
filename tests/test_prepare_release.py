"""prepare_release: iter_* -> a new root with release/ and its tracker; validated, original untouched."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import torch
from transformers import GPTBigCodeConfig, GPTBigCodeForCausalLM

from conversion.checkpoint_format import load_checkpoint_file, save_checkpoint_file
from conversion.megatron_checkpoint import read_megatron_checkpoint, write_megatron_checkpoint
from conversion.prepare_release import main, prepare_release
from guardrails.output_paths import OutputRefused


@pytest.fixture
def trained_root(tmp_path: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    torch.manual_seed(3)
    config = GPTBigCodeConfig(vocab_size=256, n_positions=16, n_embd=32, n_layer=2, n_head=4, n_inner=64,
                              multi_query=True, bos_token_id=0, eos_token_id=0)
    state = {k: v.detach().clone() for k, v in GPTBigCodeForCausalLM(config).state_dict().items()}
    root = tmp_path / "downloaded"
    write_megatron_checkpoint(root, 100, state, config, tp=2, pp=2)
    write_megatron_checkpoint(root, 250, state, config, tp=2, pp=2, optimizer={"state": {}})
    return root, state


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_release_is_built_and_original_kept(trained_root, tmp_path: Path) -> None:
    root, state = trained_root
    before = _digests(root)
    assert main(["--megatron", str(root), "--out", str(tmp_path / "base")]) == 0
    assert _digests(root) == before  # nothing in the original changed
    assert (tmp_path / "base/latest_checkpointed_iteration.txt").read_bytes() == b"release"
    released = sorted(str(p.relative_to(tmp_path / "base")) for p in (tmp_path / "base").rglob("*.pt"))
    assert released == [f"release/mp_rank_0{t}_00{p}/model_optim_rng.pt" for t in (0, 1) for p in (0, 1)]
    for t in (0, 1):
        for p in (0, 1):
            rel = f"mp_rank_0{t}_00{p}/model_optim_rng.pt"
            assert (tmp_path / "base/release" / rel).read_bytes() == (root / "iter_0000250" / rel).read_bytes()
            # Hard-linked by default (same filesystem): the release costs no extra disk.
            assert (tmp_path / "base/release" / rel).stat().st_ino == (root / "iter_0000250" / rel).stat().st_ino
    ckpt = read_megatron_checkpoint(tmp_path / "base")
    assert ckpt.tag == "release"
    assert all(torch.equal(ckpt.hf_state_dict[k], v) for k, v in state.items())


def test_chosen_iteration_and_copy_mode(trained_root, tmp_path: Path) -> None:
    root, _ = trained_root
    out = prepare_release(root, tmp_path / "base100", iteration=100, copy=True)
    src = root / "iter_0000100/mp_rank_01_001/model_optim_rng.pt"
    dest = out / "release/mp_rank_01_001/model_optim_rng.pt"
    assert dest.read_bytes() == src.read_bytes() and dest.stat().st_ino != src.stat().st_ino


def test_missing_shard_is_reported_and_nothing_written(trained_root, tmp_path: Path, capsys) -> None:
    root, _ = trained_root
    (root / "iter_0000250/mp_rank_01_000/model_optim_rng.pt").unlink()
    assert main(["--megatron", str(root), "--out", str(tmp_path / "base")]) == 2
    assert "mp_rank_01_000" in capsys.readouterr().err
    assert not (tmp_path / "base").exists()
    assert not list(tmp_path.glob("*base.tmp-*"))


def test_wrong_shape_is_reported(trained_root, tmp_path: Path) -> None:
    root, _ = trained_root
    path = root / "iter_0000250/mp_rank_00_001/model_optim_rng.pt"
    ckpt = load_checkpoint_file(path)
    encoder = ckpt["model"]["language_model"]["encoder"]
    encoder["layers.0.mlp.dense_h_to_4h.weight"] = encoder["layers.0.mlp.dense_h_to_4h.weight"][:-1].clone()
    save_checkpoint_file(path, ckpt)
    with pytest.raises(ValueError, match=r"mp_rank_00_001.*layers\.0\.mlp\.dense_h_to_4h\.weight has shape \(31, 32\), expected \(32, 32\)"):
        prepare_release(root, tmp_path / "base")
    assert not (tmp_path / "base").exists()


def test_refuses_to_overwrite(trained_root, tmp_path: Path) -> None:
    root, _ = trained_root
    with pytest.raises(ValueError, match="an input of this command; writing there would destroy it"):
        prepare_release(root, root)
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "notes.txt").write_text("keep me")
    with pytest.raises(OutputRefused, match=r"no record proves it .*\(it holds: notes.txt\)"):
        prepare_release(root, tmp_path / "base")
    assert [p.name for p in (tmp_path / "base").iterdir()] == ["notes.txt"]
    with pytest.raises(OutputRefused, match="no record proves it"):  # a run's save folder is never repointed
        prepare_release(root, _copy_of(root, tmp_path / "run"))
    first = prepare_release(root, tmp_path / "rel")
    assert prepare_release(root, first) == first  # its own earlier output is replaced


def _copy_of(root: Path, dest: Path) -> Path:
    shutil.copytree(root, dest)
    return dest


def test_distributed_optimizer_source_becomes_a_plain_release(trained_root, tmp_path: Path) -> None:
    root, state = trained_root
    for folder in sorted((root / "iter_0000250").iterdir()):  # listed before adding optim folders
        (folder / "model_optim_rng.pt").rename(folder / "model_rng.pt")
        save_checkpoint_file(folder.with_name(folder.name + "_000") / "optim.pt", {"optimizer": {}})
    out = prepare_release(root, tmp_path / "base")
    assert sorted(p.parent.name for p in (out / "release").rglob("*.pt")) == [
        "mp_rank_00_000", "mp_rank_00_001", "mp_rank_01_000", "mp_rank_01_001"]
    assert all(p.name == "model_optim_rng.pt" for p in (out / "release").rglob("*.pt"))
    ckpt = read_megatron_checkpoint(out)
    assert all(torch.equal(ckpt.hf_state_dict[k], v) for k, v in state.items())


def test_a_missing_iteration_is_named_without_blaming_the_tracker(trained_root, tmp_path: Path, capsys) -> None:
    root, _ = trained_root
    assert main(["--megatron", str(root), "--out", str(tmp_path / "base"), "--iteration", "7"]) == 2  # bad input
    err = capsys.readouterr().err
    assert "iter_0000007: missing" in err and "tracker" not in err
    assert "iter_0000100, iter_0000250" in err  # what is there instead
    assert not (tmp_path / "base").exists()
