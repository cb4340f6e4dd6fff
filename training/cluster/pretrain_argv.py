"""The data and loss flags of the fork's ``pretrain_gpt.py`` for ``training.mode: pretrain`` (continued pretraining).

``training.cluster.megatron_argv`` builds the rest of the argv (shape, schedule, precision, load/save) the same way for
both scripts; this module gives what differs: ``--data-path PREFIX --split S --data-impl mmap`` instead of the
weighted split files, the FIM flags, and the per-document options. They exist on the fork's
``multi-query-attention`` branch (the StarCoder pretraining branch), which ``MEGATRON_DIR`` must hold for this
mode: the ``mtf`` branch cannot build a GPT dataset (tests/fixtures/fork_fim/README.md). Every flag is checked
against that branch's flag list (tests/fixtures/fork_flags/mqa_arguments_flags.json). Pure; no command line.

    argv += pretrain_data_flags(cfg.pretrain)
"""
from __future__ import annotations

from runconfig.pretrain_section import PretrainConfig

PRETRAIN_SCRIPT = "pretrain_gpt.py"
PRETRAIN_BRANCH = "multi-query-attention"


def pretrain_data_flags(p: PretrainConfig) -> list[str]:
    """``--data-path``, ``--split``, the FIM rates and the document options, in a fixed order."""
    if not p.data_path:
        raise ValueError("training.pretrain.data_path is empty: name the PREFIX_content_document the fork reads"
                         " (python -m dataset.preprocess --keys content --append-eod)")
    argv = ["--data-path", p.data_path, "--split", p.split, "--data-impl", "mmap",
            "--fim-rate", repr(p.fim_rate), "--fim-spm-rate", repr(p.fim_spm_rate)]
    if p.fim_split_sample:
        argv += ["--fim-split-sample", p.fim_split_sample, "--fragment-fim-rate", repr(p.fragment_fim_rate)]
    for flag, on in (("--reset-position-ids", p.reset_position_ids), ("--reset-attention-mask", p.reset_attention_mask),
                     ("--eod-mask-loss", p.eod_mask_loss)):
        if on:
            argv.append(flag)
    return argv
