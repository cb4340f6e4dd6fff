"""Fine-tune with the local engine: ``python -m training.finetune --engine local --config RUN.yaml [k=v ...]``.

Reads the ``training:`` section of the run config (overrides as ``training.key=value``), then trains
on the fork's packed samples, saving Megatron-layout checkpoints in ``training.save``. If that folder
already has a tracker the run resumes from it exactly; otherwise it starts from ``training.load`` (a
Megatron release checkpoint or a Hugging Face folder). Several processes: ``python -m
torch.distributed.run --nproc_per_node N -m training.finetune --config RUN.yaml``.

Prints one JSON line at the end: the final iteration, losses and checkpoint. Exit status 2 on bad
configuration or data, with the reason on stderr.

The code: ``training.local.finetune`` (``training/local/finetune.py``); this module is the command's entry point only.
"""
from guardrails.command_errors import run_command
from training.local.finetune import main

if __name__ == "__main__":
    raise SystemExit(run_command(main))
