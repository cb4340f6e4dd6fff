"""The fork's ``pretrain_gpt.py`` argv for ``training.mode: pretrain``: golden list, every flag the fork's, preflight."""
import json
from pathlib import Path

import pytest

from runconfig.model_presets import PRESETS, preset
from runconfig.run_config import load_run_config
from tests.conftest import REPO_ROOT
from tests.fork_flag_check import check_against_fork, fork_flags
from training.launch import main
from training.megatron_argv import StartPoint, build_megatron_argv
from training.fork_runtime import check_megatron_dir
from training.preflight import check_pretrain_data

FLAGS = fork_flags("mqa_arguments_flags.json")
CONFIGS = REPO_ROOT / "scripts" / "configs"
FIM_DIR = Path(__file__).parent / "fixtures" / "fork_fim"
PRETRAIN = ["training.mode=pretrain", "training.pretrain.data_path=/scratch/codeft/data/code_content_document"]
ALL_ON = ["training.pretrain.fim_split_sample=<filename>", "training.pretrain.reset_position_ids=true",
          "training.pretrain.reset_attention_mask=true", "training.pretrain.eod_mask_loss=true",
          "training.use_flash_attn=false",  # the fork's flash attention takes no per-document mask
          "training.sequence_parallel=true", "training.use_distributed_optimizer=true", "training.dtype=float16"]



@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("resume", [False, True])
@pytest.mark.parametrize("extras", [[], ALL_ON])
def test_every_emitted_flag_is_the_pretraining_branchs(name, resume, extras):
    cfg = load_run_config(CONFIGS / f"{name}.yaml", [*PRETRAIN, *extras]).training
    argv = build_megatron_argv(cfg, preset(name), StartPoint(resume, "ckpt/x"), 128)
    check_against_fork(argv, FLAGS)
    flags = [a for a in argv if a.startswith("--")]
    assert len(flags) == len(set(flags)), "a flag given twice"
    # the GPT dataset's data flags, never the MTF ones
    assert not {"--train-weighted-split-paths-path", "--valid-weighted-split-paths-path", "--loss-on-targets-only",
                "--norm-target-loss"} & set(flags)
    assert argv[argv.index("--data-path") + 1] == "/scratch/codeft/data/code_content_document"


# by hand: the starcoderbase-1b fine-tune golden of tests/test_megatron_argv.py with its data flags (the weighted
# split files and --loss-on-targets-only) replaced by pretrain_gpt.py's, in training.pretrain_argv's order
GOLDEN_1B = (
    "--num-layers 24 --hidden-size 2048 --num-attention-heads 16 --ffn-hidden-size 8192"
    " --max-position-embeddings 8192 --attention-head-type multiquery --seq-length 2048"
    " --make-vocab-size-divisible-by 128 --tensor-model-parallel-size 1 --pipeline-model-parallel-size 1"
    " --micro-batch-size 8 --global-batch-size 128 --train-samples 32000"
    " --lr 2e-05 --min-lr 2e-06 --lr-decay-style cosine --lr-warmup-samples 1280 --lr-decay-samples 32000"
    " --weight-decay 0.1 --adam-beta1 0.9 --adam-beta2 0.95 --adam-eps 1e-08 --clip-grad 1.0 --seed 1234"
    " --bf16 --DDP-impl local --tokenizer-type TokenizerFromFile --tokenizer-file ckpt/starcoderbase-1b-hf/tokenizer.json"
    " --data-path /scratch/codeft/data/code_content_document --split 969,30,1 --data-impl mmap"
    " --fim-rate 0.5 --fim-spm-rate 0.5 --fim-split-sample <filename> --fragment-fim-rate 0.5"
    " --reset-position-ids --reset-attention-mask --eod-mask-loss"
    " --load ckpt/starcoderbase-1b-tp1-pp1 --save runs/sc1b/checkpoints --save-interval 50"
    " --finetune --no-load-optim --no-load-rng --eval-interval 50 --eval-iters 10 --log-interval 1"
    " --tensorboard-dir runs/sc1b/checkpoints/tensorboard --structured-logs"
    " --structured-logs-dir runs/sc1b/checkpoints/logs")


def test_golden_pretrain_argv(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the config's relative save folder does not exist here: a start
    assert main(["argv", "--config", str(CONFIGS / "starcoderbase-1b.yaml"), *PRETRAIN, *ALL_ON[:5], "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == {"script": "pretrain_gpt.py", "nodes": 1, "gpus_per_node": 8, "argv": GOLDEN_1B.split()}


def test_per_document_masks_refuse_flash_attention(tmp_path, capsys):
    # the fork's validate_args (multi-query-attention): "Flash Attention doesn't support arbitrary attention
    # masks. Please turn off reset-attention-mask": refused when the config loads, naming both keys
    config = str(CONFIGS / "starcoderbase-1b.yaml")  # ships use_flash_attn: true
    assert main(["argv", "--config", config, *PRETRAIN, "training.pretrain.reset_attention_mask=true", "--json"]) == 2
    err = capsys.readouterr().err
    assert "training.pretrain.reset_attention_mask" in err and "training.use_flash_attn=false" in err
    # either one alone is fine, and fine-tuning never sends the mask flag
    for alone in (["training.pretrain.reset_attention_mask=true", "training.use_flash_attn=false"], []):
        assert main(["argv", "--config", config, *PRETRAIN, *alone, "--json"]) == 0
        capsys.readouterr()


def test_preflight_of_the_pretraining_data(tmp_path):
    def cfg(*extra):
        return load_run_config(None, ["training.mode=pretrain", f"training.tokenizer={FIM_DIR / 'tokenizer.json'}",
                                      *extra]).training

    assert [f.message for f in check_pretrain_data(cfg(), 8192)][0].startswith("training.pretrain.data_path is empty")
    good = cfg(f"training.pretrain.data_path={FIM_DIR / 'code_content_document'}",
               "training.pretrain.fim_split_sample=<filename>")
    assert [f for f in check_pretrain_data(good, 8192) if f.error] == []  # a warning: the fixture has no manifest
    assert "is not below the tokenizer's 100 tokens" in check_pretrain_data(good, 100)[0].message
    missing = cfg(f"training.pretrain.data_path={FIM_DIR / 'code_content_document'}",
                  "training.pretrain.fim_split_sample=<file>")
    assert "--fim-split-sample needs the token '<file>'" in check_pretrain_data(missing, 8192)[0].message


def test_preflight_wants_the_pretraining_branch(tmp_path):
    fork = tmp_path / "Megatron-LM"
    (fork / "megatron" / "tokenizer").mkdir(parents=True)
    (fork / "pretrain_gpt.py").write_text("")
    # the mtf branch's names (tests/fixtures/fork_fim/README.md): no FIM_PAD, so its gpt_dataset.py cannot import
    (fork / "megatron" / "tokenizer" / "tokenizer.py").write_text('FIM_PAD_SC = "<fim-pad>"\n')
    found = check_megatron_dir(str(fork), "none.env", "pretrain_gpt.py")
    assert found and "multi-query-attention" in found[0].message and "FIM_PAD" in found[0].message
    (fork / "megatron" / "tokenizer" / "tokenizer.py").write_text('FIM_PAD = "<fim_pad>"\n')
    assert check_megatron_dir(str(fork), "none.env", "pretrain_gpt.py") == []
    assert "holds no finetune_mtf.py" in check_megatron_dir(str(fork), "none.env")[0].message
