"""Every family the local engine trains gives each document of a packed row the logits it gets alone.

Tiny random models of each family (``training.local.hf_family.tiny_models``; GPT-BigCode from ``training.model_init``)
read the fork's own packed micro-batches (``batch_train.npz``: block-diagonal mask, per-pair position ids)
through ``packed_logits``; the expectation is each pair run by itself through the model's plain causal path,
with the model's own sliding window (Mistral's and Qwen2's upper layer are shorter than the longer pairs).
"""
import numpy as np
import pytest
import torch

from tests.conftest import FORK_FIXTURES
from tests.test_packed_attention import assert_packed_loss_matches_full_logits
from training.local.hf_family.attention import model_attention_mask
from training.local.hf_family.families import decoder_layers, family_of
from training.local.hf_family.tiny_models import random_hf_model, tiny_hf_config
from training.local.model_init import TinyModelSpec
from training.local.packed_attention import packed_logits, sdpa_attend_mask

FAMILIES = ["llama", "mistral", "qwen2", "starcoder2", "gpt_bigcode"]
SHAPE = TinyModelSpec(layers=2, hidden=32, heads=4, max_positions=256, dropout=0.0)  # windows of 64 positions


def _model(family):
    if family == "gpt_bigcode":
        from training.local.model_init import random_model, tiny_config

        return random_model(tiny_config(8192, 0, 4, SHAPE), 3).eval()
    return random_hf_model(tiny_hf_config(family, 8192, 0, 4, SHAPE), 3).eval()


@pytest.fixture(scope="module")
def models():
    return {family: _model(family) for family in FAMILIES}


@pytest.fixture(scope="module")
def fork_batch():
    batch = np.load(FORK_FIXTURES / "batch_train.npz")
    rows = np.load(FORK_FIXTURES / "packed_rows_train.npz")
    return batch, rows["decoder_segment_ids"][:, :-1]


def _pairs(fork_batch, micro):
    batch, segments = fork_batch
    for row in range(batch["tokens"][micro].shape[0]):
        seg = segments[2 * micro + row]
        for s in sorted(set(seg.tolist()) - {0}):
            yield row, np.flatnonzero(seg == s)


@pytest.mark.parametrize("family", FAMILIES)
def test_packed_row_equals_each_document_alone(models, fork_batch, family):
    model = models[family]
    batch, _ = fork_batch
    longest = 0
    for micro in (0, 2):
        tokens = torch.from_numpy(batch["tokens"][micro])
        with torch.no_grad():
            packed = packed_logits(model, tokens, torch.from_numpy(batch["attention_mask"][micro]),
                                   torch.from_numpy(batch["position_ids"][micro]))
            assert torch.isfinite(packed).all()
            for row, where in _pairs(fork_batch, micro):
                alone = model(input_ids=tokens[row, where].unsqueeze(0), use_cache=False).logits[0]
                torch.testing.assert_close(packed[row, where], alone, atol=3e-5, rtol=3e-5)
                longest = max(longest, len(where))
    window = getattr(model.config, "sliding_window", None)
    if family in ("mistral", "qwen2"):  # the window really cut into some pair's attention
        assert window is not None and longest > window


@pytest.mark.parametrize("family", ["mistral", "qwen2"])
def test_without_the_window_long_documents_differ(models, fork_batch, family):
    """Control: the fork's mask as it is (no window) lets a long pair see further back than the model does."""
    model = models[family]
    batch, _ = fork_batch
    tokens = torch.from_numpy(batch["tokens"][0])
    attend = sdpa_attend_mask(torch.from_numpy(batch["attention_mask"][0]))
    row, where = max(_pairs(fork_batch, 0), key=lambda pair: len(pair[1]))
    with torch.no_grad():
        unwindowed = model(input_ids=tokens, attention_mask=attend, position_ids=torch.from_numpy(
            batch["position_ids"][0]), use_cache=False).logits
        alone = model(input_ids=tokens[row, where].unsqueeze(0), use_cache=False).logits[0]
    assert (unwindowed[row, where] - alone).abs().max() > 1e-3


def test_qwen2_gets_one_mask_per_layer_type(models):
    config = models["qwen2"].config
    assert config.layer_types == ["full_attention", "sliding_attention"]
    attend = torch.ones(1, 1, 100, 100, dtype=torch.bool).tril()
    masks = model_attention_mask(attend, config)
    assert set(masks) == {"full_attention", "sliding_attention"}
    assert torch.equal(masks["full_attention"], attend)
    assert masks["sliding_attention"][0, 0, 99].sum() == config.sliding_window  # keys 99-63 .. 99
    assert torch.equal(model_attention_mask(attend[..., :64, :64], config)["sliding_attention"], attend[..., :64, :64])


@pytest.mark.parametrize("family", FAMILIES)
def test_head_only_where_the_loss_looks_equals_the_full_logits_loss(models, fork_batch, family):
    assert_packed_loss_matches_full_logits(models[family], fork_batch[0])


@pytest.mark.parametrize("family", FAMILIES)
def test_one_fsdp_unit_per_decoder_layer(models, family):
    model = models[family]
    assert len(decoder_layers(model)) == model.config.num_hidden_layers == 2
    assert family_of(model.config).megatron_layout == (family == "gpt_bigcode")


def test_unknown_families_are_refused_by_name():
    from transformers import AutoConfig

    from training.local.hf_family.families import UnsupportedModelError

    with pytest.raises(UnsupportedModelError, match="model_type 'gemma2' is not one the local engine trains"):
        family_of(AutoConfig.for_model("gemma2"))


def test_reset_position_ids_alone_keeps_attention_across_documents(models):
    """The fork's --reset-position-ids without --reset-attention-mask: positions restart, attention does not.

    Given restarting positions and no mask, transformers would take the row for packed sequences and cut
    attention at each restart; the batch carries the causal mask explicitly instead.
    """
    from training.samples.gpt_batch import DocumentMasking, get_gpt_batch

    model = models["llama"]
    rows = torch.tensor([[11, 12, 13, 14, 0, 21, 22, 23, 24, 25, 26]])
    batch = get_gpt_batch(rows, eod=0, pad_id=4, masking=DocumentMasking(reset_position_ids=True))
    assert batch.position_ids.tolist() == [[0, 1, 2, 3, 4, 0, 1, 2, 3, 4]]
    causal = ~torch.ones(10, 10, dtype=torch.bool).tril()[None, None]  # True = masked
    with torch.no_grad():
        got = packed_logits(model, batch.tokens, batch.attention_mask, batch.position_ids)
        across = packed_logits(model, batch.tokens, causal, batch.position_ids)
        second_alone = model(input_ids=rows[:, 5:10], use_cache=False).logits
    torch.testing.assert_close(got, across, rtol=1e-6, atol=1e-6)
    assert (got[0, 5:] - second_alone[0]).abs().max() > 1e-3  # the second document still sees the first
