"""``training.pretrain``: continued pretraining on raw code (``training.mode: pretrain``), the fork's GPT flags.

Read by the local engine (``training.pretrain_data``, ``training.gpt_batch``) and meant for the fork's
``pretrain_gpt.py`` argv: every key is the fork's flag of the same name (``--data-path``, ``--split``,
``--fim-rate``, ``--fim-spm-rate``, ``--fim-split-sample``, ``--fragment-fim-rate``, ``--reset-position-ids``,
``--reset-attention-mask``, ``--eod-mask-loss``). FIM is on by default at the rates the StarCoder cookbook
adapts models with (0.5 / 0.5); the fork's own default is ``fim_rate: 0``.
"""
from __future__ import annotations

from dataclasses import dataclass

from runconfig.value_rules import check_values


@dataclass(frozen=True)
class PretrainConfig:
    data_path: str = ""  # raw-document dataset prefix: PREFIX_content_document (dataset.preprocess --keys content)
    split: str = "969,30,1"  # train,valid,test document shares of data_path
    fim_rate: float = 0.5
    fim_spm_rate: float = 0.5
    fim_split_sample: str = ""  # e.g. <filename>: FIM per file of a sample; "" = per sample
    fragment_fim_rate: float = 0.5
    # attention across documents inside a row by default (the fork's and the cookbook's default); all three
    # true = block-diagonal per document: positions restart and attention stops at each EOD, and the token
    # after an EOD is not predicted from it
    reset_position_ids: bool = False
    reset_attention_mask: bool = False
    eod_mask_loss: bool = False

    def __post_init__(self) -> None:
        check_values(self)  # the rates are probabilities: runconfig.value_rules
