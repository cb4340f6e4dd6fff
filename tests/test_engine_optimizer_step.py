"""The engine's update equals the fork's training step written out by hand (no torch optimizer involved).

Reference, per iteration: the fork's ``loss_func`` (``sum(CE * loss_mask) / sum(loss_mask)`` over full
logits) on each micro-batch, averaged over the accumulation window; Megatron's ``clip_grad_norm_fp32``
(``coeff = max_norm / (norm + 1e-6)``, applied when < 1); apex ``FusedAdam(adam_w_mode=True)``
(bias-corrected moments, decoupled weight decay) with weight decay 0 on biases and LayerNorm weights;
the learning rate of ``OptimizerParamScheduler.get_lr`` counted in samples, stepped after the update
(so the first update, inside the warmup, uses lr 0).
"""
import json
import math

import numpy as np
import torch

from conversion.megatron_checkpoint import read_megatron_checkpoint
from runconfig import load_section
from runconfig.training_section import TrainingConfig
from tests.local_engine_fixtures import run_overrides, split_files, tiny_release
from training.local.engine import train
from training.local.model_init import load_start_model
from training.samples.mtf_batch import get_batch
from training.local.optim_setup import split_weight_decay
from training.local.packed_attention import packed_logits
from training.samples.packed_dataset import build_packed_dataset

ITERS, MICRO, GLOBAL, SEQ, PAD = 4, 1, 2, 128, 4
MAX_LR, MIN_LR, WARMUP, DECAY = 1e-3, 1e-4, 4, 8
CLIP, WD, BETA1, BETA2, EPS = 0.05, 0.1, 0.9, 0.95, 1e-8


def fork_lr(samples: int) -> float:
    """``OptimizerParamScheduler.get_lr`` (cosine) with steps counted in samples."""
    if samples <= WARMUP:
        return MAX_LR * samples / WARMUP
    if samples > DECAY:
        return MIN_LR
    ratio = (samples - WARMUP) / (DECAY - WARMUP)
    return MIN_LR + 0.5 * (math.cos(math.pi * ratio) + 1.0) * (MAX_LR - MIN_LR)


def no_decay_names(model: torch.nn.Module) -> set[str]:
    """Biases and LayerNorm parameters, found by module type (not by tensor rank)."""
    names = set()
    for module_name, module in model.named_modules():
        for param_name, _ in module.named_parameters(recurse=False):
            if isinstance(module, torch.nn.LayerNorm) or param_name == "bias":
                names.add(f"{module_name}.{param_name}")
    return names


def reference_run(tmp_path, base):
    model, _ = load_start_model(base)
    model.train()
    train_split, _ = split_files(tmp_path)
    data = build_packed_dataset(train_split, None, ITERS * GLOBAL, SEQ, 1234, tmp_path / "ref_cache", PAD)
    params = dict(model.named_parameters())
    no_decay = no_decay_names(model)
    moments = {n: (torch.zeros_like(p), torch.zeros_like(p)) for n, p in params.items()}
    norms = []
    for it in range(ITERS):
        for p in params.values():
            p.grad = None
        n_micro = GLOBAL // MICRO
        for m in range(n_micro):
            first = it * GLOBAL + m * MICRO
            items = [data[i] for i in range(first, first + MICRO)]
            rows = {k: torch.from_numpy(np.stack([x[k] for x in items])) for k in items[0]}
            batch = get_batch(rows, PAD, norm_target_loss=False)
            logits = packed_logits(model, batch.tokens, batch.attention_mask, batch.position_ids)
            losses = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), batch.labels.flatten(),
                                                       reduction="none")
            mask = batch.loss_mask.view(-1).float()
            (torch.sum(losses * mask) / mask.sum() / n_micro).backward()
        with torch.no_grad():
            norm = math.sqrt(sum(float(p.grad.double().pow(2).sum()) for p in params.values() if p.grad is not None))
            norms.append(norm)
            coeff = CLIP / (norm + 1.0e-6)
            lr = fork_lr(it * GLOBAL)
            for name, p in params.items():
                grad = p.grad if p.grad is not None else torch.zeros_like(p)
                if coeff < 1.0:
                    grad = grad * coeff
                m1, m2 = moments[name]
                m1.mul_(BETA1).add_(grad, alpha=1 - BETA1)
                m2.mul_(BETA2).addcmul_(grad, grad, value=1 - BETA2)
                step = it + 1
                update = (m1 / (1 - BETA1 ** step)) / ((m2 / (1 - BETA2 ** step)).sqrt() + EPS)
                wd = 0.0 if name in no_decay else WD
                p.sub_(lr * (update + wd * p))
    return {n: p.detach() for n, p in model.state_dict().items()}, norms, no_decay


def test_engine_step_equals_the_forks_formulas(tmp_path):
    base = tiny_release(tmp_path, dropout=0.0)
    save = tmp_path / "run"
    overrides = run_overrides(
        tmp_path, base, save, train_iters=ITERS, seq_length=SEQ, micro_batch_size=MICRO, global_batch_size=GLOBAL,
        lr=MAX_LR, min_lr=MIN_LR, lr_warmup_samples=WARMUP, lr_decay_samples=DECAY, clip_grad=CLIP, weight_decay=WD,
        adam_beta1=BETA1, adam_beta2=BETA2, adam_eps=EPS, save_interval=ITERS, valid_split_file='""',
        tensorboard="false",
    )
    train(load_section(None, "training", TrainingConfig, overrides), say=lambda _m: None)
    records = [json.loads(x) for x in (save / "metrics.jsonl").read_text().splitlines()]
    logged = [r for r in records if r["kind"] == "train"]
    assert [r["lr"] for r in logged] == [fork_lr(i * GLOBAL) for i in range(ITERS)]
    assert logged[0]["lr"] == 0.0 and logged[2]["lr"] == MAX_LR and MIN_LR < logged[3]["lr"] < MAX_LR

    expected, norms, no_decay = reference_run(tmp_path, base)
    # clipping really acted, and the engine measured the same pre-clipping norm
    assert min(norms) > CLIP
    np.testing.assert_allclose([r["grad_norm"] for r in logged], norms, rtol=1e-4)

    saved = read_megatron_checkpoint(save).hf_state_dict
    start = read_megatron_checkpoint(base).hf_state_dict
    for name, tensor in expected.items():
        torch.testing.assert_close(saved[name], tensor, rtol=1e-6, atol=2e-6, msg=name)  # seen: <= 4e-7
    assert max(float((saved[n] - start[n]).abs().max()) for n in expected) > 1e-4  # the weights moved

    # weight decay: off exactly on biases and LayerNorm weights (the fork's groups), on everything else
    model, _ = load_start_model(base)
    decay, skipped = split_weight_decay(model)
    assert set(skipped) == no_decay and "transformer.ln_f.weight" in no_decay
    assert "transformer.wte.weight" in decay and "transformer.h.0.attn.c_attn.weight" in decay
