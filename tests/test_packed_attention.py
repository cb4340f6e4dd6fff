"""Packed rows under SDPA with the fork's mask give every pair the logits it gets when run alone.

The masks and position ids are the fork's own (``batch_train.npz``, produced by the real
``finetune_mtf.get_batch``); the expectation is each pair run by itself through the plain causal path.
"""
import numpy as np
import pytest
import torch
from transformers import GPTBigCodeConfig, GPTBigCodeForCausalLM

from training.local.packed_attention import PackedLossModel, packed_logits, sdpa_attend_mask


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    config = GPTBigCodeConfig(vocab_size=8192, n_positions=256, n_embd=32, n_layer=2, n_head=4,
                              bos_token_id=0, eos_token_id=0, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    config._attn_implementation = "sdpa"
    return GPTBigCodeForCausalLM(config).eval()


@pytest.fixture(scope="module")
def fork_batch(request):
    from tests.conftest import FORK_FIXTURES

    batch = np.load(FORK_FIXTURES / "batch_train.npz")
    rows = np.load(FORK_FIXTURES / "packed_rows_train.npz")
    return batch, rows["decoder_segment_ids"][:, :-1]


@pytest.mark.parametrize("micro", [0, 2])
def test_packed_logits_equal_each_pair_alone(tiny_model, fork_batch, micro):
    batch, segments = fork_batch
    tokens = torch.from_numpy(batch["tokens"][micro])
    mask = torch.from_numpy(batch["attention_mask"][micro])
    positions = torch.from_numpy(batch["position_ids"][micro])
    with torch.no_grad():
        packed = packed_logits(tiny_model, tokens, mask, positions)
    assert torch.isfinite(packed).all()
    pairs_checked = 0
    for row in range(tokens.shape[0]):
        seg = segments[2 * micro + row]
        for s in sorted(set(seg.tolist()) - {0}):
            where = np.flatnonzero(seg == s)
            alone_tokens = tokens[row, where].unsqueeze(0)
            with torch.no_grad():
                alone = tiny_model(input_ids=alone_tokens).logits[0]
            torch.testing.assert_close(packed[row, where], alone, atol=2e-5, rtol=2e-5)
            pairs_checked += 1
    assert pairs_checked >= 2


def test_without_the_mask_later_pairs_differ(tiny_model, fork_batch):
    """Control: a plain causal pass over the packed row leaks earlier pairs into later ones."""
    batch, segments = fork_batch
    tokens = torch.from_numpy(batch["tokens"][1])  # rows 2, 3; row 3 packs two pairs
    seg = segments[3]
    where = np.flatnonzero(seg == 2)
    with torch.no_grad():
        leaky = tiny_model(input_ids=tokens[1:2]).logits[0, where]
        alone = tiny_model(input_ids=tokens[1:2, where]).logits[0]
    assert (leaky - alone).abs().max() > 1e-3


def test_padding_rows_keep_gradients_finite(tiny_model, fork_batch):
    batch, _ = fork_batch
    tokens = torch.from_numpy(batch["tokens"][3])
    mask = torch.from_numpy(batch["attention_mask"][3])
    assert mask.all(dim=-1).any(), "fixture should contain fully masked (padding) rows"
    model = tiny_model.train()
    try:
        logits = packed_logits(model, tokens, mask, torch.from_numpy(batch["position_ids"][3]))
        loss_mask = torch.from_numpy(batch["loss_mask"][3])
        labels = torch.from_numpy(batch["labels"][3])
        losses = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), reduction="none")
        loss = (losses * loss_mask.flatten()).sum() / loss_mask.sum()
        loss.backward()
        assert torch.isfinite(loss)
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert len(grads) == len(list(model.parameters()))
        assert all(torch.isfinite(g).all() for g in grads)
    finally:
        model.zero_grad(set_to_none=True)
        model.eval()


def test_sdpa_mask_inverts_and_lets_empty_rows_see_themselves():
    fork = torch.ones(1, 1, 3, 3, dtype=torch.bool)  # True = masked
    fork[0, 0, 0, 0] = fork[0, 0, 1, 0] = fork[0, 0, 1, 1] = False
    attend = sdpa_attend_mask(fork)
    expected = torch.tensor([[True, False, False], [True, True, False], [False, False, True]])
    assert torch.equal(attend[0, 0], expected)


@pytest.mark.parametrize("mask_key", ["loss_mask", "loss_mask_normalized"])
def test_packed_loss_equals_full_logits_reference(tiny_model, fork_batch, mask_key):
    """The head-on-targets-only loss equals sum(CE * mask) / sum(mask) over all positions' logits."""
    assert_packed_loss_matches_full_logits(tiny_model, fork_batch[0], mask_key)


def assert_packed_loss_matches_full_logits(model, batch, mask_key="loss_mask", micro=2):
    """``PackedLossModel`` on micro-batch ``micro`` of the fork's batch == the loss of every position's logits."""
    tokens = torch.from_numpy(batch["tokens"][micro])
    mask = torch.from_numpy(batch["attention_mask"][micro])
    positions = torch.from_numpy(batch["position_ids"][micro])
    labels = torch.from_numpy(batch["labels"][micro])
    weights = torch.from_numpy(batch[mask_key][micro]).reshape(labels.shape)
    with torch.no_grad():
        logits = packed_logits(model, tokens, mask, positions)
        per_token = torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none")
        expected = (per_token * weights.flatten()).sum() / weights.sum()
        got = PackedLossModel(model)(tokens, mask, positions, labels, weights)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
