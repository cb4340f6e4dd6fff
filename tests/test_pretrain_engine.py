"""Continued pretraining (``training.mode: pretrain``): the fork's batch masks, the document-attention option,
and the local engine end to end on the FIM fixture's raw code."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from runconfig import load_section
from runconfig.training_section import TrainingConfig
from tests.local_engine_fixtures import tiny_release
from training.engine import train
from training.gpt_batch import DocumentMasking, get_gpt_batch
from training.model_init import TinyModelSpec, load_start_model, write_tiny_release
from training.packed_attention import packed_logits, require_sdpa

FIM_DIR = Path(__file__).parent / "fixtures" / "fork_fim"
BLOCK = DocumentMasking(reset_position_ids=True, reset_attention_mask=True, eod_mask_loss=True)


def test_batch_by_hand():
    # tokens 5 6 EOD 7 EOD EOD 8 (then the last label 4 = <fim_pad>), EOD = 0, pad = 4
    rows = torch.tensor([[5, 6, 0, 7, 0, 0, 8, 4]])
    plain = get_gpt_batch(rows, eod=0, pad_id=4)
    assert plain.tokens.tolist() == [[5, 6, 0, 7, 0, 0, 8]] and plain.labels.tolist() == [[6, 0, 7, 0, 0, 8, 4]]
    assert plain.loss_mask.tolist() == [[1, 1, 1, 1, 1, 1, 0]]  # every label but the pad
    assert plain.position_ids.tolist() == [[0, 1, 2, 3, 4, 5, 6]]
    assert plain.attention_mask is None  # causal over the whole row (the model's causal path)
    block = get_gpt_batch(rows, eod=0, pad_id=4, masking=BLOCK)
    # the fork's get_ltor_masks_and_position_ids worked by hand: positions restart after each EOD ...
    assert block.position_ids.tolist() == [[0, 1, 2, 0, 1, 0, 0]]
    # ... no label is predicted from an EOD input, and attention stops at each EOD (which ends its document)
    assert block.loss_mask.tolist() == [[1, 1, 0, 1, 0, 0, 0]]
    allowed = (~block.attention_mask[0, 0]).int().tolist()
    assert allowed == [[1, 0, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0, 0], [0, 0, 0, 1, 0, 0, 0],
                       [0, 0, 0, 1, 1, 0, 0], [0, 0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 0, 1]]


def test_document_attention_changes_only_the_later_documents_logits(tmp_path):
    model, _ = load_start_model(tiny_release(tmp_path, dropout=0.0))
    require_sdpa(model)
    model.eval()
    two_docs = torch.tensor([[11, 12, 13, 14, 0, 21, 22, 23, 24, 25, 26]])
    one_doc = torch.tensor([[31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41]])
    with torch.no_grad():
        def logits(rows, masking):
            batch = get_gpt_batch(rows, eod=0, pad_id=4, masking=masking)
            return packed_logits(model, batch.tokens, batch.attention_mask, batch.position_ids)

        across, per_doc = logits(two_docs, DocumentMasking()), logits(two_docs, BLOCK)
        # the first document (through its EOD, position 4) sees the same context either way
        torch.testing.assert_close(across[0, :5], per_doc[0, :5], rtol=1e-5, atol=1e-5)
        # the second one no longer sees the first: its logits change ...
        assert (across[0, 5:] - per_doc[0, 5:]).abs().max() > 1e-3
        # ... to exactly those of the second document run alone
        causal_mask = (~torch.tril(torch.ones(5, 5, dtype=torch.bool)))[None, None]  # True = masked
        alone = packed_logits(model, two_docs[:, 5:10], causal_mask, torch.arange(5)[None])
        torch.testing.assert_close(per_doc[0, 5:10], alone[0], rtol=1e-5, atol=1e-5)
        # a row without EOD is one document: the option changes nothing
        torch.testing.assert_close(logits(one_doc, DocumentMasking()), logits(one_doc, BLOCK), rtol=1e-5, atol=1e-5)


def _cfg(tmp_path, **extra):
    values = {
        "mode": "pretrain", "load": tiny_release(tmp_path, dropout=0.0), "save": tmp_path / "run",
        "tokenizer": FIM_DIR / "tokenizer.json", "pretrain.data_path": FIM_DIR / "code_content_document",
        "seq_length": 128, "micro_batch_size": 2, "global_batch_size": 4, "train_iters": 4, "lr": 1e-3,
        "min_lr": 1e-4, "save_interval": 4, "eval_interval": 2, "eval_iters": 1, "cpu_threads": 1,
        "progress_bar": False, "tensorboard": False,
    }
    values.update(extra)
    return load_section(None, "training", TrainingConfig, [f"training.{k}={v}" for k, v in values.items()])


def test_engine_pretrains_on_fim_samples(tmp_path):
    messages = []
    result = train(_cfg(tmp_path), say=messages.append)
    assert result.iteration == 4 and (tmp_path / "run" / "iter_0000004" / "mp_rank_00" / "model_optim_rng.pt").is_file()
    train_block = next(m for m in messages if m.startswith("data: train: documents [0, 291)"))
    assert "FIM rate 0.5" in train_block
    # the index maps carry the fork's names (16 train samples; valid: (4 // 2 + 1) x 1 x 4 = 12)
    maps = sorted(p.name for p in (tmp_path / "run" / "index_maps").glob("*_idx.npy"))
    assert "code_content_document_train_indexmap_16ns_128sl_1234s_doc_idx.npy" in maps
    assert "code_content_document_valid_indexmap_12ns_128sl_1234s_shuffle_idx.npy" in maps
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if r["kind"] == "train"]
    assert len(losses) == 4 and all(np.isfinite(losses)) and losses[-1] < losses[0]
    # every label but <fim_pad> counts: 4 rows x 128 labels per global batch, rank 0 sees all of them
    assert all(r["target_tokens_rank0"] <= 4 * 128 and r["target_tokens_rank0"] > 4 * 120
               for r in records if r["kind"] == "train")


def test_resumed_pretraining_equals_an_uninterrupted_run(tmp_path):
    cfg = _cfg(tmp_path, save_interval=2, **{"pretrain.fim_split_sample": "<filename>"})
    whole = train(cfg, say=lambda _: None)
    save = tmp_path / "run"
    shutil.rmtree(save / "iter_0000004")  # as if the run had stopped after iteration 2
    (save / "latest_checkpointed_iteration.txt").write_text("2")
    messages = []
    resumed = train(cfg, say=messages.append)
    assert any(m.startswith("restored: optimizer state") for m in messages)
    assert resumed.train_losses == whole.train_losses[2:]  # FIM rows 8..15 replayed exactly after the resume


def test_pretrain_needs_its_data_path_and_a_model_that_covers_the_tokenizer(tmp_path):
    with pytest.raises(ValueError, match="training.pretrain.data_path is empty"):
        train(_cfg(tmp_path, **{"pretrain.data_path": ""}))
    small = tmp_path / "small"
    # a 2-token vocabulary (model_init pads the embedding to 128 rows and records the real vocab, 2)
    write_tiny_release(_tiny_vocab_tokenizer(tmp_path), small, TinyModelSpec(layers=1, hidden=16, heads=2, max_positions=128))
    with pytest.raises(ValueError, match="8192 tokens, but the model in training.load has only 2 embeddings"):
        train(_cfg(tmp_path, load=small))
    assert not (tmp_path / "run" / "index_maps").exists()  # refused before the index maps are written


def _tiny_vocab_tokenizer(tmp_path):
    from tokenizers import Tokenizer, models

    path = tmp_path / "tiny_tokenizer.json"
    Tokenizer(models.WordLevel({"<|endoftext|>": 0, "a": 1}, unk_token="a")).save(str(path))
    return path
