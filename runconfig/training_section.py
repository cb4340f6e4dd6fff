"""The ``training:`` section of the run config (read by ``training.*``).

Names follow Megatron's flags (``--lr-warmup-samples`` -> ``lr_warmup_samples``) so that the argv
builder for the fork (``training.megatron_argv``) and the local engine read the same values. Keys that
only one engine reads say so in their comment (``cpu_threads``, ``fsdp`` ...: local; ``model``,
``tensor_model_parallel_size``, ``extra_args`` ...: the fork). The split planner (``dataset.splits plan
--config``) reads ``seq_length``, ``train_iters``, ``global_batch_size``, ``eval_*``, ``seed`` and
``legacy_split_offsets`` from here too.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from runconfig.pretrain_section import PretrainConfig
from runconfig.model_presets import preset
from runconfig.value_rules import check_values


@dataclass(frozen=True)
class LoraConfig:
    enabled: bool = False
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("c_attn", "c_proj", "c_fc")
    qlora: bool = False  # 4-bit base weights through bitsandbytes; needs a GPU

    def __post_init__(self) -> None:
        check_values(self)  # each value's range: runconfig.value_rules
        if not self.target_modules:
            raise ValueError("lora.target_modules is empty; name at least one of c_attn, c_proj, c_fc")


@dataclass(frozen=True)
class TrainingConfig:
    engine: Literal["local", "megatron"] = "local"
    # finetune: inputs/targets pairs from the split files (finetune_mtf.py); pretrain: raw documents of
    # pretrain.data_path with FIM (pretrain_gpt.py), loss on every token but padding
    mode: Literal["finetune", "pretrain"] = "finetune"
    # the fork: a preset of runconfig.model_presets (starcoderbase-1b/-3b/-7b, starcoderbase); empty = the
    # shape the release checkpoint in `load` records
    model: str = ""
    load: str = ""  # a Megatron release checkpoint folder or a Hugging Face model folder
    save: str = ""
    train_split_file: str = ""
    valid_split_file: str = ""
    tokenizer: str = ""  # tokenizer.json; the local engine reads the pad id (<fim_pad>) from it
    pad_id: int = -1  # -1 = <fim_pad> from `tokenizer`, else the model config's pad_token_id
    seq_length: int = 2048
    micro_batch_size: int = 1
    global_batch_size: int = 8
    train_iters: int = 100
    lr: float = 2e-5
    min_lr: float = 0.0
    lr_warmup_samples: int = 0
    lr_decay_samples: int = 0  # 0 = train_iters * global_batch_size
    lr_decay_style: Literal["cosine", "linear", "constant"] = "cosine"
    weight_decay: float = 0.1
    adam_beta1: float = 0.9
    adam_beta2: float = 0.95
    adam_eps: float = 1e-8
    clip_grad: float = 1.0
    seed: int = 1234
    save_interval: int = 50
    eval_interval: int = 50
    eval_iters: int = 10
    log_interval: int = 1
    norm_target_loss: bool = False
    loss_on_targets_only: bool = True
    # true: every split range is read from document 0, as the fork's packed dataset does (so a valid range
    # 0.95:1 reads the first 5% of the documents, which training also sees); false: the range's own documents
    legacy_split_offsets: bool = False
    # auto: bfloat16 on GPUs, float32 on CPUs, for both engines (the fork's GPUs: cluster.request_gpus; see
    # compute_dtype); float16 only for the fork (--fp16)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    # dropout of the hidden states (embeddings, attention output, MLP) and of the attention probabilities; null =
    # the start checkpoint's recorded values (a resume: the save folder's); the fork gets them as flags
    hidden_dropout: float | None = None
    attention_dropout: float | None = None
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    peak_flops: float = 0.0  # 0 = look up the device in the table
    cpu_threads: int = 0  # local engine: torch threads per process; 0 = torch's default
    fsdp: bool = False  # local engine under torchrun: shard the model with FSDP2 instead of DDP
    tensorboard: bool = True  # local engine: also write TensorBoard event files under SAVE/tensorboard
    progress_bar: bool = True  # local engine: a tqdm bar on rank 0
    lora: LoraConfig = field(default_factory=LoraConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    # the fork only: parallel layout and kernels
    tensor_model_parallel_size: int = 1
    pipeline_model_parallel_size: int = 1
    sequence_parallel: bool = False
    use_distributed_optimizer: bool = False
    use_flash_attn: bool = False
    recompute_activations: bool = False
    extra_args: tuple[str, ...] = ()  # appended last to finetune_mtf.py's argv, checked against the fork's flags

    def __post_init__(self) -> None:
        check_values(self)  # each value's range (lr, betas, eval_iters, device...): runconfig.value_rules
        if self.global_batch_size % self.micro_batch_size:
            raise ValueError(
                f"global_batch_size {self.global_batch_size} is not a multiple of micro_batch_size"
                f" {self.micro_batch_size}"
            )
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr {self.min_lr} is above lr {self.lr}")
        if self.model:
            preset(self.model)  # raises with the known names
        if self.engine == "megatron" and self.mode == "pretrain" and self.pretrain.reset_attention_mask \
                and self.use_flash_attn:  # the fork's validate_args asserts it: flash attention takes no mask
            raise ValueError("training.pretrain.reset_attention_mask needs training.use_flash_attn=false: the"
                             " fork's flash attention cannot apply per-document attention masks")
        if self.dtype == "float16" and self.engine == "local":
            raise ValueError("dtype float16 is for the fork (engine: megatron); the local engine trains"
                             " in float32 or bfloat16")
        # checked here, when the config loads, not when the schedule is built after the model and the index maps
        if self.lr_decay_style != "constant" and self.decay_samples <= self.lr_warmup_samples:
            raise ValueError(
                f"lr_decay_samples ({self.decay_samples}{'' if self.lr_decay_samples else ' = train_iters x global_batch_size'})"
                f" must exceed lr_warmup_samples ({self.lr_warmup_samples}); lower the warmup or raise lr_decay_samples"
            )

    def compute_dtype(self, on_gpu: bool) -> str:
        """``dtype`` with ``auto`` resolved, the same rule for both engines: bfloat16 on GPUs, float32 on CPUs."""
        if self.dtype != "auto":
            return self.dtype
        return "bfloat16" if on_gpu else "float32"

    @property
    def decay_samples(self) -> int:
        """Samples the LR decays over: ``lr_decay_samples``, 0 meaning the whole run."""
        return self.lr_decay_samples or self.train_iters * self.global_batch_size
