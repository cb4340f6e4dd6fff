"""Checkpoints saved by the BigCode fork's own code, converted to HF: the logits equal the fork's own logits.

The fixture (``tests/fixtures/fork/checkpoint/``, see its README) holds a TP=2 PP=2 and a TP=1 PP=1 tree written
by the fork's ``save_checkpoint`` and the logits the fork's model computed after its ``load_checkpoint``. Unlike
the round trip and ``verify logits`` (the converter against itself), this catches a tensor the key map puts in
the wrong place: a swapped layer, a transposed or mis-split shard, a wrong bias.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from conversion.checkpoint_format import load_checkpoint_file
from conversion.megatron_to_hf import convert

FIXTURE = Path(__file__).parent / "fixtures" / "fork" / "checkpoint"
TREES = {"tp2pp2": "", "tp1pp1": "tp1pp1_"}  # tree -> key prefix of its logits in logits.npz
ATOL = 1e-4  # the README's bound; the fixture's own validation measured 2.2e-6 (fp32 on CPU)


@pytest.fixture(scope="module")
def fork_logits():
    return np.load(FIXTURE / "logits.npz", allow_pickle=False)


@pytest.mark.parametrize("tree", TREES)
def test_converted_fork_checkpoint_gives_the_forks_logits(tree, fork_logits, tmp_path):
    from transformers import GPTBigCodeForCausalLM

    out = convert(FIXTURE / tree, tmp_path / "hf", tokenizer=FIXTURE / "tokenizer.json", progress=False)
    model = GPTBigCodeForCausalLM.from_pretrained(str(out), dtype=torch.float32, attn_implementation="eager").eval()
    real = int(fork_logits["vocab_size"])
    padded = fork_logits[f"{TREES[tree]}case0_logits"].shape[-1]
    assert model.config.vocab_size in (real, padded)  # the real tokens, or every row of the fork's padded vocab
    segments = 0
    for case in range(4):
        tokens, ids = fork_logits[f"case{case}_tokens"], fork_logits[f"case{case}_segments"]
        expected = fork_logits[f"{TREES[tree]}case{case}_logits"]
        for row in range(tokens.shape[0]):
            for segment in sorted(set(ids[row].tolist()) - {0}):  # 0 = padding; each segment alone, positions from 0
                where = np.flatnonzero(ids[row] == segment)
                with torch.no_grad():
                    got = model(input_ids=torch.as_tensor(tokens[row, where])[None]).logits[0].numpy()
                np.testing.assert_allclose(got[:, :real], expected[row, where, :real], rtol=0, atol=ATOL)
                if got.shape[-1] == padded:  # the padding rows were kept: their (random) logits must match too
                    np.testing.assert_allclose(got, expected[row, where], rtol=0, atol=ATOL)
                segments += 1
    assert segments == 6  # the README: 1 + 2 + 2 + 1 real segments


def test_fork_files_load_safely_and_plain_weights_only_refuses_them():
    files = sorted(FIXTURE.glob("*/iter_*/mp_rank_*/model_optim_rng.pt"))
    assert len(files) == 5
    for path in files:
        checkpoint = load_checkpoint_file(path)
        assert {"args", "iteration", "model", "optimizer", "rng_state"} <= set(checkpoint)
        with pytest.raises(pickle.UnpicklingError):
            torch.load(path, map_location="cpu", weights_only=True)
