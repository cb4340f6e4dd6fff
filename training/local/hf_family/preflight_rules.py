"""What ``training.launch preflight`` checks of a local-engine run that starts from a Hugging Face folder.

Called by ``training.cluster.preflight.run_preflight`` for ``engine: local`` (not a command). Every problem is one
``Finding`` naming the value and the fix, found before a job is queued: a family the engine does not train, a
sequence longer than the model's positions, a tokenizer larger than the model's embeddings, FSDP2 on a
single process, LoRA on a family whose checkpoints are not the fork's, W&B asked for where ``wandb`` is not
installed (a warning: the cluster's environment may have it).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any


def check_local_start(cfg: Any, nodes: int, gpus_per_node: int, finding: Any) -> list[Any]:
    """Findings (``finding(error, message)``) for the local engine's start model and settings."""
    found = []
    if cfg.fsdp and nodes * gpus_per_node < 2:
        found.append(finding(True, "training.fsdp shards the model over several processes, but cluster.nodes x"
                             f" cluster.gpus_per_node = {nodes * gpus_per_node}; use DDP (fsdp=false) or more GPUs"))
    if cfg.wandb.mode != "disabled":
        try:
            import wandb  # noqa: F401
        except ImportError:
            found.append(finding(False, f"training.wandb.mode={cfg.wandb.mode} but wandb is not installed here;"
                                 " install it in the job's environment (pip install wandb)"))
    folder = Path(cfg.load)
    if not cfg.load or not (folder / "config.json").is_file():
        return found  # a Megatron release (GPT-BigCode) or a resume: the other rules cover it
    from transformers import AutoConfig

    from training.local.hf_family.families import UnsupportedModelError, family_of, max_positions

    try:
        config = AutoConfig.from_pretrained(str(folder))
        family = family_of(config)
    except (UnsupportedModelError, OSError, ValueError) as exc:
        return found + [finding(True, f"{folder}/config.json: {exc}")]
    if cfg.seq_length > max_positions(config):
        found.append(finding(True, f"training.seq_length {cfg.seq_length} exceeds the {max_positions(config)}"
                             f" positions of {folder}; lower seq_length"))
    if cfg.lora.enabled and not family.megatron_layout:
        found.append(finding(True, f"training.lora trains GPT-BigCode models only; {folder} is"
                             f" {config.model_type}: set training.lora.enabled=false"))
    if cfg.tokenizer:
        from dataset.formats.text_tokenizer import TextTokenizer, TokenizerFileError

        try:
            tokens = TextTokenizer(cfg.tokenizer).vocab_size
        except TokenizerFileError as exc:
            return found + [finding(True, str(exc))]
        if tokens > config.vocab_size:
            found.append(finding(True, f"{cfg.tokenizer} has {tokens} tokens (its end-of-document token"
                                 f" included), {folder} only {config.vocab_size} embeddings; use the model's"
                                 " own tokenizer"))
    return found
