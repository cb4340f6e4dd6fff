"""The fork's argv: every flag is one the fork defines, golden lists per preset, start vs resume, the CLI."""
import json

import pytest

from runconfig.model_presets import PRESETS, preset
from runconfig.run_config import load_run_config
from tests.conftest import REPO_ROOT
from tests.fork_flag_check import check_against_fork, fork_flags
from tests.local_engine_fixtures import tiny_release
from training.cluster.launch import main
from training.cluster.megatron_argv import StartPoint, build_megatron_argv

FLAGS = fork_flags("mtf_arguments_flags.json")
CONFIGS = REPO_ROOT / "scripts" / "configs"
ALL_ON = ["training.sequence_parallel=true", "training.use_distributed_optimizer=true", "training.use_flash_attn=true",
          "training.recompute_activations=true", "training.norm_target_loss=true", "training.dtype=float16"]



@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("resume", [False, True])
@pytest.mark.parametrize("extras", [[], ALL_ON])
def test_every_emitted_flag_is_the_forks(name, resume, extras):
    cfg = load_run_config(CONFIGS / f"{name}.yaml", extras).training
    argv = build_megatron_argv(cfg, preset(name), StartPoint(resume, "ckpt/x"), 128)
    check_against_fork(argv, FLAGS)
    flags = [a for a in argv if a.startswith("--")]
    assert len(flags) == len(set(flags)), "a flag given twice"
    # the facts of the issue: never the FIM tokenizer, never the data-path mode, never an iteration schedule
    assert argv[argv.index("--tokenizer-type") + 1] == "TokenizerFromFile"
    assert argv[argv.index("--attention-head-type") + 1] == "multiquery"
    assert not {"--data-path", "--split", "--train-iters", "--lr-warmup-iters", "--lr-decay-iters"} & set(flags)
    assert ("--finetune" in flags) == (not resume) == ("--no-load-optim" in flags) == ("--no-load-rng" in flags) \
        == ("--reset-progress" in flags)  # a start's data position is 0 whatever the release records


def test_extra_args_come_last_and_are_checked():
    cfg = load_run_config(CONFIGS / "starcoderbase-1b.yaml", ["training.extra_args=[--attention-dropout, '0.0']"]).training
    argv = build_megatron_argv(cfg, preset("starcoderbase-1b"), StartPoint(False, "r"), 128)
    assert argv[-2:] == ["--attention-dropout", "0.0"]
    check_against_fork(argv, FLAGS)
    bad = build_megatron_argv(load_run_config(CONFIGS / "starcoderbase-1b.yaml", ["training.extra_args=[--lr_decay_style, cosine]"]).training,
                              preset("starcoderbase-1b"), StartPoint(False, "r"), 128)
    with pytest.raises(AssertionError, match="--lr_decay_style is not a flag"):
        check_against_fork(bad, FLAGS)  # an underscore spelling the fork rejects is caught


COMMON = ("--lr 2e-05 --min-lr 2e-06 --lr-decay-style cosine --lr-warmup-samples 1280 --lr-decay-samples 32000"
          " --weight-decay 0.1 --adam-beta1 0.9 --adam-beta2 0.95 --adam-eps 1e-08 --clip-grad 1.0 --seed 1234"
          " --bf16 --DDP-impl local --tokenizer-type TokenizerFromFile --tokenizer-file ckpt/{p}-hf/tokenizer.json"
          " --train-weighted-split-paths-path /scratch/codeft/data/{s}/train_data_paths.txt"
          " --valid-weighted-split-paths-path /scratch/codeft/data/{s}/valid_data_paths.txt --loss-on-targets-only"
          " --load ckpt/{p}-tp{tp}-pp{pp} --save runs/{s}/checkpoints --save-interval 50"
          " --finetune --no-load-optim --no-load-rng --reset-progress --eval-interval 50 --eval-iters 10 --log-interval 1"
          " --tensorboard-dir runs/{s}/checkpoints/tensorboard --structured-logs"
          " --structured-logs-dir runs/{s}/checkpoints/logs --use-flash-attn")
# worked out by hand from the example configs and the rules in training/cluster/megatron_argv.py:
# train samples = 250 iterations x 128 = 32000, decay over all of them, shape from the published configs
GOLDEN = {
    "starcoderbase-1b": (
        "--num-layers 24 --hidden-size 2048 --num-attention-heads 16 --ffn-hidden-size 8192"
        " --max-position-embeddings 8192 --attention-head-type multiquery --seq-length 2048"
        " --make-vocab-size-divisible-by 128 --tensor-model-parallel-size 1 --pipeline-model-parallel-size 1"
        " --micro-batch-size 8 --global-batch-size 128 --train-samples 32000 "
        + COMMON.format(p="starcoderbase-1b", s="sc1b", tp=1, pp=1)),
    "starcoderbase-3b": (
        "--num-layers 36 --hidden-size 2816 --num-attention-heads 22 --ffn-hidden-size 11264"
        " --max-position-embeddings 8192 --attention-head-type multiquery --seq-length 2048"
        " --make-vocab-size-divisible-by 128 --tensor-model-parallel-size 2 --pipeline-model-parallel-size 1"
        " --sequence-parallel --micro-batch-size 4 --global-batch-size 128 --train-samples 32000 "
        + COMMON.format(p="starcoderbase-3b", s="sc3b", tp=2, pp=1)),
    "starcoderbase-7b": (
        "--num-layers 42 --hidden-size 4096 --num-attention-heads 32 --ffn-hidden-size 16384"
        " --max-position-embeddings 8192 --attention-head-type multiquery --seq-length 2048"
        " --make-vocab-size-divisible-by 128 --tensor-model-parallel-size 4 --pipeline-model-parallel-size 1"
        " --sequence-parallel --micro-batch-size 2 --global-batch-size 128"
        " --train-samples 32000 " + COMMON.format(p="starcoderbase-7b", s="sc7b", tp=4, pp=1)),
    "starcoderbase": (
        "--num-layers 40 --hidden-size 6144 --num-attention-heads 48 --ffn-hidden-size 24576"
        " --max-position-embeddings 8192 --attention-head-type multiquery --seq-length 2048"
        " --make-vocab-size-divisible-by 128 --tensor-model-parallel-size 4 --pipeline-model-parallel-size 4"
        " --sequence-parallel --micro-batch-size 1 --global-batch-size 128"
        " --train-samples 32000 " + COMMON.format(p="starcoderbase", s="sc15b", tp=4, pp=4)
        + " --recompute-activations"),
}
NODES = {"starcoderbase-1b": 1, "starcoderbase-3b": 1, "starcoderbase-7b": 2, "starcoderbase": 4}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_argv_per_preset(name, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the config's relative save folder does not exist here: a start
    assert main(["argv", "--config", str(CONFIGS / f"{name}.yaml"), "--json"]) == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)  # one JSON object and nothing else
    assert printed == {"script": "finetune_mtf.py", "nodes": NODES[name], "gpus_per_node": 8,
                       "argv": GOLDEN[name].split()}
    assert captured.err.startswith("start: runs/")


def test_shell_form_quotes_values(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MEGATRON_DIR", raising=False)
    assert main(["argv", "--config", str(CONFIGS / "starcoderbase-1b.yaml"), "training.save=my runs/$(touch x)"]) == 0
    line = capsys.readouterr().out.strip()
    assert "--save 'my runs/$(touch x)' " in line and line.split()[1] == '"$MEGATRON_DIR"/finetune_mtf.py'
    monkeypatch.setenv("MEGATRON_DIR", "/opt/Megatron LM")
    assert main(["argv", "--config", str(CONFIGS / "starcoderbase-1b.yaml")]) == 0
    assert "'/opt/Megatron LM/finetune_mtf.py' --num-layers 24 " in capsys.readouterr().out
    assert not (tmp_path / "x").exists()


def _tiny_run(tmp_path, save, **extra):
    base = tiny_release(tmp_path)
    config = tmp_path / "run.yaml"
    lines = [f"  {k}: {v}" for k, v in {
        "engine": "megatron", "load": base, "save": save, "tokenizer": "tok.json", "seq_length": 256,
        "train_split_file": "train.txt", "global_batch_size": 8, "micro_batch_size": 1, **extra}.items()]
    config.write_text("training:\n" + "\n".join(lines) + "\ncluster:\n  gpus_per_node: 2\n")
    return base, config


def test_start_then_resume_decided_from_the_save_folder(tmp_path, capsys):
    from guardrails.output_paths import own_run_folder
    from training.local.checkpointing import TRAINING_RUN, save_checkpoint
    from training.local.model_init import load_start_model
    from training.local.optim_setup import build_adamw

    save = tmp_path / "save"
    base, config = _tiny_run(tmp_path, save)
    assert main(["argv", "--config", str(config), "--json"]) == 0
    out = capsys.readouterr()
    argv = json.loads(out.out)["argv"]
    # no preset: the shape is the release checkpoint's (2 layers, hidden 64, 4 heads, 256 positions)
    assert argv[:10] == ["--num-layers", "2", "--hidden-size", "64", "--num-attention-heads", "4",
                         "--ffn-hidden-size", "256", "--max-position-embeddings", "256"]
    assert argv[argv.index("--load") + 1] == str(base) and "--finetune" in argv and "start:" in out.err
    model, _ = load_start_model(base)
    weights = {k: v for k, v in model.state_dict().items() if k != "lm_head.weight"}
    # a real engine optimizer state: the save writes it in the fork's FP32Optimizer form
    optimizer = build_adamw(model, load_run_config(config).training, fused=False)
    own_run_folder(save, TRAINING_RUN)  # as the engine makes its save folder its own before the first checkpoint
    save_checkpoint(save, 3, weights, model.config, optimizer.state_dict(), None, {}, [{}],
                    {"seq_length": 256, "global_batch_size": 8, "seed": 1234, "consumed_train_samples": 24})
    # the engine wrote the fork's FP32Optimizer state: an fp32 fork run loads it, a bf16 or
    # distributed-optimizer one cannot (another structure) and resumes without it, saying why
    assert main(["argv", "--config", str(config), "training.dtype=float32", "--json"]) == 0
    out = capsys.readouterr()
    argv = json.loads(out.out)["argv"]
    assert argv[argv.index("--load") + 1] == str(save) and "--finetune" not in argv and "--no-load-optim" not in argv
    assert "--reset-progress" not in argv  # a resume continues its data position
    assert "resume:" in out.err and "--no-load-optim" not in out.err
    for override in ("training.dtype=bfloat16", "training.use_distributed_optimizer=true"):
        assert main(["argv", "--config", str(config), override, "--json"]) == 0
        out = capsys.readouterr()
        argv = json.loads(out.out)["argv"]
        assert argv.count("--no-load-optim") == 1 and "--finetune" not in argv and "--no-load-rng" not in argv
        assert "--no-load-optim: the checkpoint's optimizer state is the fork's FP32Optimizer's" in out.err
    # the same save folder with another batch size (data position) or shape is refused, naming both values
    assert main(["argv", "--config", str(config), "training.global_batch_size=16", "--json"]) == 2
    err = capsys.readouterr().err
    assert "global_batch_size: checkpoint 8, run 16" in err
    assert main(["argv", "--config", str(config), "training.model=starcoderbase-1b", "--json"]) == 2
    assert "num_layers: checkpoint 2, run 24" in capsys.readouterr().err


def test_no_preset_and_no_checkpoint_is_a_clear_error(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text(f"training:\n  engine: megatron\n  load: {tmp_path / 'none'}\n  save: {tmp_path / 's'}\n"
                      "  tokenizer: t.json\n  train_split_file: t.txt\n")
    assert main(["argv", "--config", str(config), "--json"]) == 2
    assert "name a preset" in capsys.readouterr().err


def test_local_engine_job_runs_the_local_module(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text(f"training:\n  engine: local\n  load: {tmp_path / 'b'}\n  save: {tmp_path / 's'}\n")
    assert main(["argv", "--config", str(config), "training.train_iters=3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "script": "training.finetune", "nodes": 1, "gpus_per_node": 8,
        "argv": ["--config", str(config), "training.train_iters=3"]}
