"""The local training loop: the fork's packed samples, masks, loss, optimiser and schedule on CPU or GPUs.

One iteration = one global batch: ``global_batch_size / (micro_batch_size x processes)`` micro-batches
per process with gradient accumulation; each micro-batch's loss is the fork's
``sum(CE * loss_mask) / sum(loss_mask)`` and the step minimises their mean (DDP averages over ranks,
as Megatron does over data-parallel ranks). Then gradient clipping, AdamW at the schedule's rate for
the samples consumed so far, validation every ``eval_interval``, a checkpoint every
``save_interval`` and at the end. fp32 on CPU; bf16 autocast over fp32 master weights on GPU.
Every run, fresh or resumed, writes its resolved config (``dataclasses.asdict`` of the
``TrainingConfig``) to ``SAVE/training_config.json`` once its start (resume state, model, data) has
been checked, before the first step.

    result = train(cfg)          # cfg: runconfig.training_section.TrainingConfig
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from tqdm import tqdm

from conversion.checkpoint_format import tag_dir_name
from guardrails.atomic_files import write_json_atomic
from training.local import checkpointing, fsdp_start, lora
from training.local.distributed import (
    DistEnv, barrier, close_distributed, full_model_state, full_optimizer_state, init_distributed,
    mean_across_ranks, no_grad_sync, wrap_model,
)
from training.local.lr_schedule import SampleLRSchedule
from training.local.metrics import (
    MetricsLogger, flops_per_token, model_state_gb, peak_flops_for, peak_memory_gb, write_loss_curve,
)
from training.local.hf_family import checkpoint as hf_checkpoint
from training.local.hf_family.families import (
    decoder_layers, enable_activation_checkpointing, max_positions, uses_megatron_layout,
)
from training.local.model_dropout import apply_run_dropout
from training.local.optim_setup import build_adamw, set_lr
from training.local.packed_attention import PackedLossModel, causal_lm, require_sdpa
from training.resume.run_identity import identity_values
from training.local.rng_state import capture_rng_state, restore_rng_state, seed_everything
from training.resume.schedule_resume import fresh_schedule, resume_schedule
from training.local.wandb_tracker import check_wandb, open_wandb
from training.local.train_data import (
    build_run_data, check_data_fits_model, describe_run_data, micro_batches, resolve_pad_id,
)

CONFIG_NAME = "training_config.json"  # the resolved TrainingConfig of the latest run (or resume), in cfg.save


@dataclass
class TrainResult:
    iteration: int
    consumed_samples: int
    train_losses: list[tuple[int, float]] = field(default_factory=list)
    valid_losses: list[tuple[int, float]] = field(default_factory=list)
    last_checkpoint: Path | None = None
    tokens_per_s: float = 0.0


def _compute_dtype(env: DistEnv, cfg: Any) -> str:
    return cfg.compute_dtype(env.device.type == "cuda")


def _amp(env: DistEnv, cfg: Any) -> contextlib.AbstractContextManager:
    if _compute_dtype(env, cfg) == "bfloat16":
        return torch.autocast(device_type=env.device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _forward_loss(runner: torch.nn.Module, batch: Any, env: DistEnv, cfg: Any) -> torch.Tensor:
    """One micro-batch (already on ``env.device``) through the (DDP/FSDP-wrapped) ``PackedLossModel``."""
    with _amp(env, cfg):
        return runner(batch.tokens, batch.attention_mask, batch.position_ids, batch.labels, batch.loss_mask)


def evaluate(runner: torch.nn.Module, valid: dict[str, Any], cfg: Any, env: DistEnv, pad_id: int) -> dict[str, float]:
    """Mean micro-batch loss over the first ``eval_iters`` global batches of every valid group."""
    runner.eval()
    results = {}
    with torch.no_grad():
        for name, dataset in valid.items():
            losses = [
                _forward_loss(runner, batch, env, cfg)
                for k in range(cfg.eval_iters)
                for batch in micro_batches(dataset, k * cfg.global_batch_size, cfg, env, pad_id)
            ]
            results[name] = float(mean_across_ranks(torch.stack(losses).mean(), env))
    if hasattr(runner, "reshard"):  # FSDP2 keeps the root unsharded after a no-grad forward; the optimizer
        runner.reshard()           # and the state-dict gathering expect the sharded parameters back
    runner.train()
    return results


def _validate(runner: torch.nn.Module, data: Any, cfg: Any, env: DistEnv, pad_id: int, iteration: int,
              result: TrainResult, logger: MetricsLogger | None, log: Callable[[str], None]) -> None:
    valid = evaluate(runner, data.valid, cfg, env, pad_id)
    first = next(iter(valid.values()))
    result.valid_losses.append((iteration, first))
    log(f"iteration {iteration}: validation loss {first:.4f}"
        + "".join(f" [{name}: {value:.4f}]" for name, value in valid.items() if len(valid) > 1))
    if logger is not None:
        logger.log("valid", iteration, {"loss": first, **{f"loss_{n}": v for n, v in valid.items()}})


def _setup_model(cfg: Any, plan: checkpointing.StartPlan, resume: checkpointing.ResumeState | None,
                 env: DistEnv, say: Callable[[str], None]) -> tuple[torch.nn.Module, dict | None]:
    """The model on its device (under FSDP2: on the CPU or meta, before sharding) and, for a fresh FSDP2 start,
    the weights ``fsdp_start.broadcast_start_weights`` sends from rank 0 once it is sharded (else None)."""
    start = None
    if resume is not None and not cfg.lora.enabled:
        model = resume.build_model()
        say(f"restored: model weights from {plan.source / tag_dir_name(resume.iteration)}")
    else:
        # LoRA resumes on the untouched base weights of training.load plus the saved adapters; under FSDP2
        # only rank 0 reads them (the others build the model on the meta device)
        model, where, start = fsdp_start.start_model(Path(cfg.load), env, sharded=cfg.fsdp and env.distributed)
        say(f"loaded: {where}")
    if cfg.seq_length > max_positions(model.config):
        raise ValueError(f"training.seq_length {cfg.seq_length} exceeds the model's {max_positions(model.config)} positions")
    dropout = apply_run_dropout(model, cfg)  # the config's, else the start checkpoint's; before LoRA's own
    if dropout is not None:
        say(f"dropout: hidden {dropout[0]}, attention {dropout[1]}")
    if cfg.lora.enabled:
        if not uses_megatron_layout(model.config):
            raise ValueError(f"training.lora trains GPT-BigCode models only; train the {model.config.model_type}"
                             " model fully (training.lora.enabled=false)")
        if cfg.fsdp:
            raise ValueError("training.lora with training.fsdp is not supported; LoRA trains with DDP (fsdp=false)")
        model = lora.apply_lora(model, cfg.lora, env.device)
        if resume is not None:
            if not resume.lora_adapters:
                raise checkpointing.ResumeError(f"{plan.source}: checkpoint has no LoRA adapters but lora.enabled=true")
            lora.load_adapter_state(model, resume.lora_adapters)
            say("restored: LoRA adapter weights")
    require_sdpa(model)
    if cfg.activation_checkpointing:  # recompute each decoder layer in the backward pass (the same RNG draws)
        enable_activation_checkpointing(causal_lm(model))
    if cfg.fsdp and env.distributed:  # fully_shard moves each unit to the device as it shards it: one whole
        return model, start           # layer on the GPU at a time, never the whole model
    if hf_checkpoint.on_meta(model):  # a distributed checkpoint's model: its weights are read after wrapping
        hf_checkpoint.materialize(model, env.device)
        return model, start
    return model.to(env.device), start


def _run_args(cfg: Any, env: DistEnv, schedule: SampleLRSchedule, consumed: int) -> dict[str, Any]:
    """The run's settings under the fork's names (``conversion.fork_arg_defaults`` gives the rest)."""
    run_args = {"consumed_train_samples": consumed, "consumed_valid_samples": 0,
                "global_batch_size": cfg.global_batch_size, "micro_batch_size": cfg.micro_batch_size,
                "seq_length": cfg.seq_length, "train_iters": cfg.train_iters, "seed": cfg.seed,
                "lr": cfg.lr, "min_lr": cfg.min_lr, "lr_decay_style": cfg.lr_decay_style,
                "lr_warmup_samples": cfg.lr_warmup_samples, "lr_decay_samples": schedule.decay_samples,
                "weight_decay": cfg.weight_decay, "adam_beta1": cfg.adam_beta1, "adam_beta2": cfg.adam_beta2,
                "adam_eps": cfg.adam_eps, "clip_grad": cfg.clip_grad, "optimizer": "adam",
                "data_parallel_size": env.world_size, "save": str(cfg.save), "load": str(cfg.load) or None,
                "save_interval": cfg.save_interval, "eval_interval": cfg.eval_interval,
                "eval_iters": cfg.eval_iters, "log_interval": cfg.log_interval,
                "loss_on_targets_only": cfg.loss_on_targets_only, "norm_target_loss": cfg.norm_target_loss,
                "local_engine": True, **identity_values(cfg)}  # what a resume must share (the data files too)
    if cfg.tokenizer:
        run_args["tokenizer_file"] = str(Path(cfg.tokenizer).resolve())
    return run_args


def _save(cfg: Any, env: DistEnv, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
          schedule: SampleLRSchedule, iteration: int, consumed: int, divisible_by: int) -> Path | None:
    fsdp = cfg.fsdp and env.distributed
    rng = [capture_rng_state(cfg.seed, env.device)]
    if env.distributed:
        gathered: list[Any] = [None] * env.world_size
        dist.all_gather_object(gathered, rng[0])
        rng = gathered
    if not uses_megatron_layout(causal_lm(model).config):  # Hugging Face weights (training.local.hf_family.checkpoint)
        state = {"consumed_train_samples": consumed, "opt_param_scheduler": schedule.state_dict(consumed),
                 "rng_state": rng, "args": {**_run_args(cfg, env, schedule, consumed), "iteration": iteration}}
        return hf_checkpoint.save_checkpoint(Path(cfg.save), iteration, model, optimizer, env, fsdp, state)
    # under FSDP2 every rank takes part in gathering the full tensors; without it only rank 0 needs them
    optimizer_state = full_optimizer_state(model, optimizer, fsdp) if (fsdp or env.is_main) else None
    is_lora = lora.is_lora(model)
    weights = None
    if is_lora:
        weights = lora.merged_state_dict(model) if env.is_main else None
    elif fsdp or env.is_main:
        weights = {k: v for k, v in full_model_state(model, fsdp).items() if k != "lm_head.weight"}
    path = None
    if env.is_main:
        config = causal_lm(model).config
        run_args = _run_args(cfg, env, schedule, consumed)
        path = checkpointing.save_checkpoint(
            Path(cfg.save), iteration, weights, config, optimizer_state,
            lora.adapter_state_dict(model) if is_lora else None, schedule.state_dict(consumed), rng, run_args,
            divisible_by=divisible_by, trained_dtype=_compute_dtype(env, cfg))
    barrier(env)
    return path


def train(cfg: Any, say: Callable[[str], None] = print) -> TrainResult:
    """Run (or resume) a local fine-tuning run described by a ``TrainingConfig``."""
    if cfg.engine != "local":
        raise ValueError(f"training.engine is {cfg.engine!r}; this is the local engine (engine=local)")
    env = init_distributed(cfg.device)
    # process-wide torch settings, put back afterwards so that an in-process caller is left as it was
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    try:
        with checkpointing.hold_save_folder(cfg.load, cfg.save, env.is_main):  # one run per save folder at a time
            return _train(cfg, env, say if env.is_main else (lambda _msg: None))
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
        close_distributed(env)


def _train(cfg: Any, env: DistEnv, say: Callable[[str], None]) -> TrainResult:
    if cfg.cpu_threads:
        torch.set_num_threads(cfg.cpu_threads)
    torch.use_deterministic_algorithms(True, warn_only=env.device.type == "cuda")
    check_wandb(cfg.wandb)  # now, not after the model and data are read; every rank, so that none waits on rank 0
    plan = checkpointing.plan_start(cfg.load, cfg.save)
    resume = (checkpointing.load_resume_state(plan.source, cfg.global_batch_size, cfg)
              if plan.resume else None)
    seed_everything(cfg.seed)
    divisible_by = checkpointing.vocab_divisor(plan.source)  # the run's checkpoints pad the vocab as its start
    model, start = _setup_model(cfg, plan, resume, env, say)
    inner_config = causal_lm(model).config
    # before the first file is written (the index maps under SAVE): data the model cannot embed is refused,
    # first, since a tokenizer larger than the model also explains a padding id beyond its embeddings
    for line in check_data_fits_model(cfg, inner_config.vocab_size, str(plan.source)):
        say(line)  # data no manifest vouches for; validation reading training documents (as splits plan says)
    pad_id = resolve_pad_id(cfg, inner_config)
    data = build_run_data(cfg, env, pad_id, Path(cfg.save) / "index_maps")
    for block in describe_run_data(data):
        say(f"data: {block}")
    if cfg.legacy_split_offsets and data.valid:
        say("warning: legacy_split_offsets=true reads every range from document 0 (the fork's bug): validation"
            " ranges such as 0.95:1 overlap the training documents")
    if data.valid:
        fork_count = (cfg.train_iters // cfg.eval_interval + 1) * cfg.eval_iters * cfg.global_batch_size
        say(f"data: validation scores the same first {cfg.eval_iters * cfg.global_batch_size} samples (eval_iters x"
            f" global_batch_size) of each valid group at every evaluation; the fork walks on through {fork_count}"
            " ((train_iters // eval_interval + 1) x eval_iters x global_batch_size, as splits plan counts them)")
    if data.skipped_pairs:
        say(f"data: {data.skipped_pairs} pairs longer than {cfg.seq_length + 1} tokens were skipped (as the fork does)")
    runner = wrap_model(PackedLossModel(model), env, cfg.fsdp, decoder_layers(causal_lm(model)),
                        bf16=_compute_dtype(env, cfg) == "bfloat16")
    if hf_checkpoint.on_meta(model):  # each rank allocates its own shards only (read from the checkpoint below,
        hf_checkpoint.materialize(runner, env.device)  # or sent by rank 0 at a fresh start)
    if start is not None:
        fsdp_start.broadcast_start_weights(model, start)
    # after FSDP sharding, which replaces the parameters
    optimizer = build_adamw(model, cfg, fused=not (cfg.fsdp and env.distributed))
    # a resume keeps its checkpoint's decay window unless training.lr_decay_samples says otherwise (as the fork)
    decision = resume_schedule(cfg, resume.scheduler_state, resume.consumed_train_samples) if resume is not None \
        else fresh_schedule(cfg)
    schedule = SampleLRSchedule.from_config(cfg, decision.decay_samples)
    iteration, consumed = 0, 0
    if resume is not None:
        resume.restore_optimizer(model, optimizer, cfg.fsdp and env.distributed)
        for line in decision.lines():
            say(line)
        if env.world_size > len(resume.rng_states):  # said once, by the main rank
            # more processes than the checkpoint was saved with: a rank without its own state borrows rank 0's,
            # so its dropout masks repeat rank 0's; exact resume holds only for the same number of processes
            say(f"warning: the checkpoint holds RNG states for {len(resume.rng_states)} process(es), this run has"
                f" {env.world_size}; ranks {len(resume.rng_states)}.. reuse rank 0's state")
        restore_rng_state(resume.rng_states[env.rank] if env.rank < len(resume.rng_states) else resume.rng_states[0],
                          env.device)
        iteration, consumed = resume.iteration, resume.consumed_train_samples
        say(f"restored: optimizer state, LR schedule at {consumed} samples, RNG states (python, numpy, torch),"
            f" data position iteration {iteration} / {consumed} samples")
    else:
        say(f"reset: optimizer state, LR schedule, RNG (seed {cfg.seed}), data position (iteration 0)")
    n_params = sum(p.numel() for p in model.parameters())
    per_token = flops_per_token(n_params, inner_config.num_hidden_layers, inner_config.hidden_size, cfg.seq_length)
    peak = peak_flops_for(env.device, cfg.peak_flops)
    keep_through = iteration if resume is not None else -1
    logger = None
    if env.is_main:  # only now that the start has been checked: a refused resume leaves the folder's record alone
        write_json_atomic(Path(cfg.save) / CONFIG_NAME, asdict(cfg), indent=2)
        logger = MetricsLogger(Path(cfg.save), keep_through, cfg.tensorboard,
                               open_wandb(cfg.wandb, Path(cfg.save), asdict(cfg)))
    result = TrainResult(iteration, consumed)
    n_micro = cfg.global_batch_size // (cfg.micro_batch_size * env.world_size)
    bar = tqdm(total=cfg.train_iters, initial=iteration, disable=not (env.is_main and cfg.progress_bar),
               desc="train", unit="it", dynamic_ncols=True)
    log = bar.write if env.is_main and cfg.progress_bar else say
    trainable = [p for p in model.parameters() if p.requires_grad]
    if data.valid and iteration == 0:  # the baseline the validation curve is read against
        _validate(runner, data, cfg, env, pad_id, 0, result, logger, log)
    runner.train()
    while iteration < cfg.train_iters:
        started = time.perf_counter()
        lr = schedule.lr_at(consumed)
        set_lr(optimizer, lr)
        optimizer.zero_grad(set_to_none=True)
        losses, target_tokens = [], torch.zeros((), dtype=torch.long, device=env.device)
        for k, batch in enumerate(micro_batches(data.train, consumed, cfg, env, pad_id)):
            with no_grad_sync(runner, sync=k == n_micro - 1):
                loss = _forward_loss(runner, batch, env, cfg)
                (loss / n_micro).backward()
            losses.append(loss.detach())
            target_tokens += (batch.loss_mask > 0).sum()  # a tensor: no device sync per micro-batch
        grad_norm = torch.nn.utils.clip_grad_norm_(trainable, cfg.clip_grad) if cfg.clip_grad > 0 else None
        optimizer.step()
        iteration += 1
        consumed += cfg.global_batch_size
        train_loss = float(mean_across_ranks(torch.stack(losses).mean(), env))
        elapsed = time.perf_counter() - started
        tokens_per_s = cfg.global_batch_size * cfg.seq_length / elapsed
        result.train_losses.append((iteration, train_loss))
        result.tokens_per_s = tokens_per_s
        bar.update(1)
        bar.set_postfix(loss=f"{train_loss:.4f}", lr=f"{lr:.2e}")
        if logger is not None and iteration % cfg.log_interval == 0:
            tflops = per_token * tokens_per_s / env.world_size / 1e12
            values = {"loss": train_loss, "lr": lr, "grad_norm": float(grad_norm) if grad_norm is not None else None,
                      "consumed_samples": consumed, "tokens_per_s": tokens_per_s, "iteration_s": elapsed,
                      "tflops_per_device": tflops, "mfu": (tflops * 1e12 / peak) if peak else None,
                      "target_tokens_rank0": float(target_tokens), "peak_memory_gb_rank0": peak_memory_gb(env.device),
                      "model_state_gb_rank0": model_state_gb(model, optimizer)}
            logger.log("train", iteration, values)
        if data.valid and (iteration % cfg.eval_interval == 0 or iteration == cfg.train_iters):
            _validate(runner, data, cfg, env, pad_id, iteration, result, logger, log)
        if iteration % cfg.save_interval == 0 or iteration == cfg.train_iters:
            result.last_checkpoint = _save(cfg, env, model, optimizer, schedule, iteration, consumed, divisible_by)
            log(f"iteration {iteration}: saved checkpoint {result.last_checkpoint}")
    bar.close()
    if result.last_checkpoint is None and iteration > 0:  # resumed at train_iters: the checkpoint exists
        result.last_checkpoint = Path(cfg.save) / tag_dir_name(iteration)
    result.iteration, result.consumed_samples = iteration, consumed
    if len(result.valid_losses) > 1:
        say(f"validation loss: {result.valid_losses[0][1]:.4f} (iteration {result.valid_losses[0][0]})"
            f" -> {result.valid_losses[-1][1]:.4f} (iteration {result.valid_losses[-1][0]})")
    if logger is not None:
        logger.close()
        png = write_loss_curve(Path(cfg.save) / "metrics.jsonl", Path(cfg.save) / "loss_curve.png")
        if png is not None:
            say(f"loss curve: {png}")
    return result
