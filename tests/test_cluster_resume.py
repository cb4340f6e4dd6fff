"""A resubmitted cluster run: what it resumes, what it refuses, and the values it hands the fork.

Each test writes a save folder holding a checkpoint as the fork saves it (its recorded args and scheduler entry,
values taken from the fork's own ``save_checkpoint`` and ``get_optimizer_param_scheduler``) and asks
``training.launch argv`` what the job would run:

* another seed, sequence length or train split file (by path, or the same file rewritten) is refused;
* dropout: the start checkpoint's recorded values, or ``training.hidden_dropout``/``attention_dropout``, are passed;
* a longer run keeps its decay window (``training.resume.schedule_resume``) and passes ``--override-opt_param-scheduler``;
* ``dtype: auto`` resolves to ``--bf16`` only on GPUs.
"""
import json

import pytest

from conversion.megatron_checkpoint import write_megatron_checkpoint
from runconfig import load_section
from runconfig.training_section import TrainingConfig
from tests.conftest import FORK_FIXTURES
from tests.fork_stand_in import site_env_text, stand_in_checkout
from tests.local_engine_fixtures import TOKENIZER, tiny_release
from guardrails.output_paths import own_run_folder
from training.local.checkpointing import TRAINING_RUN
from training.cluster.launch import main
from training.local.model_init import load_start_model
from training.resume.schedule_resume import resume_schedule


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tiny_release(tmp_path_factory.mktemp("cluster_resume"), dropout=0.0)


def _config(tmp_path, base, **extra):
    train = tmp_path / "train.txt"
    if not train.exists():
        train.write_text(f'"train: 1.0 0:1 {tmp_path}/pairs"\n')
    values = {"engine": "megatron", "load": base, "save": tmp_path / "save", "tokenizer": TOKENIZER,
              "seq_length": 256, "train_split_file": train, "global_batch_size": 4, "micro_batch_size": 1,
              "train_iters": 4, "lr": 1e-3, "min_lr": 1e-4, "lr_warmup_samples": 4, "seed": 1234, **extra}
    config = tmp_path / "run.yaml"
    config.write_text("training:\n" + "".join(f"  {k}: {v}\n" for k, v in values.items())
                      + "cluster:\n  gpus_per_node: 1\n  request_gpus: false\n")
    return config


def _fork_save(tmp_path, base, iteration=4, train_samples=16, decay=16, record=True, **args):
    """A save folder as the fork leaves it after ``iteration`` iterations of the run ``_config`` describes (with
    the record ``submit`` writes before the first job; ``record=False``: as before records existed, with the
    fork's ``logs/``)."""
    if record:
        own_run_folder(tmp_path / "save", TRAINING_RUN)
    model, _ = load_start_model(base)
    state = {k: v for k, v in model.state_dict().items() if k != "lm_head.weight"}
    recorded = {"seq_length": 256, "global_batch_size": 4, "seed": 1234, "consumed_train_samples": iteration * 4,
                "train_samples": train_samples, "lr_decay_samples": decay, "hidden_dropout": 0.0,
                "attention_dropout": 0.0, "train_weighted_split_paths_path": str(tmp_path / "train.txt"),
                "train_weighted_split_names": ["train"], "train_weighted_split_weights": [["1.0"]],
                "train_weighted_split_splits": [["0:1"]], "train_weighted_split_paths": [[f"{tmp_path}/pairs"]],
                **args}
    scheduler = {"max_lr": 1e-3, "lr_warmup_steps": 4, "num_steps": iteration * 4, "lr_decay_style": "cosine",
                 "lr_decay_steps": decay, "min_lr": 1e-4, "start_wd": 0.1, "end_wd": 0.1, "wd_incr_style": "constant",
                 "wd_incr_steps": train_samples}
    write_megatron_checkpoint(tmp_path / "save", iteration, state, model.config, optimizer={"state": {}},
                              opt_param_scheduler=scheduler, extra_args=recorded)
    if not record:  # the fork's own files beside its checkpoints (--structured-logs-dir SAVE/logs)
        (tmp_path / "save" / "logs").mkdir()
        (tmp_path / "save" / "logs" / "logs_rank_0.txt").write_text(f"iteration {iteration}\n")


def _argv(config, capsys, *overrides):
    rc = main(["argv", "--config", str(config), "--json", *overrides])
    out = capsys.readouterr()
    return rc, (json.loads(out.out)["argv"] if rc == 0 else None), out.err


@pytest.mark.parametrize("override,message", [
    ("training.seed=99", "seed: checkpoint 1234, run 99"),
    ("training.seq_length=128", "seq_length: checkpoint 256, run 128"),
    ("training.global_batch_size=8", "global_batch_size: checkpoint 4, run 8"),
])
def test_a_resume_with_another_seed_length_or_batch_is_refused(tmp_path, base, capsys, override, message):
    config = _config(tmp_path, base)
    _fork_save(tmp_path, base)
    rc, argv, _ = _argv(config, capsys)
    assert rc == 0 and argv[argv.index("--load") + 1] == str(tmp_path / "save")  # the run's own settings: resumed
    rc, _, err = _argv(config, capsys, override)
    assert rc == 2 and "its checkpoints come from another run" in err and message in err


def test_a_resume_with_other_training_data_is_refused(tmp_path, base, capsys):
    config = _config(tmp_path, base)
    _fork_save(tmp_path, base)
    other = tmp_path / "other.txt"
    other.write_text(f'"train: 1.0 0:1 {tmp_path}/pairs"\n')
    rc, _, err = _argv(config, capsys, f"training.train_split_file={other}")
    assert rc == 2 and f"train_weighted_split_paths_path: checkpoint {tmp_path / 'train.txt'}, run {other}" in err
    # the same file, rewritten to name other data: the recorded groups say what the run trained on
    (tmp_path / "train.txt").write_text(f'"train: 1.0 0:1 {tmp_path}/commits"\n')
    rc, _, err = _argv(config, capsys)
    assert rc == 2 and f"the checkpoint's run read train: 1 0:1 {tmp_path}/pairs, it now says train: 1 0:1" \
        f" {tmp_path}/commits" in err


def test_dropout_is_the_start_checkpoints_unless_the_config_sets_it(tmp_path, base, capsys):
    config = _config(tmp_path, base)
    _, argv, _ = _argv(config, capsys)  # a start from a release that records dropout 0.0 (the fork's default is 0.1)
    assert argv[argv.index("--hidden-dropout") + 1] == "0.0" and argv[argv.index("--attention-dropout") + 1] == "0.0"
    _, argv, _ = _argv(config, capsys, "training.hidden_dropout=0.05", "training.attention_dropout=0.2")
    assert argv[argv.index("--hidden-dropout") + 1] == "0.05" and argv[argv.index("--attention-dropout") + 1] == "0.2"


def test_dtype_auto_is_bf16_on_gpus_only(tmp_path, base, capsys):
    config = _config(tmp_path, base)
    _, argv, _ = _argv(config, capsys)  # request_gpus: false: CPU nodes, float32 as the local engine there
    assert "--bf16" not in argv and "--DDP-impl" not in argv
    _, argv, _ = _argv(config, capsys, "cluster.request_gpus=true")
    assert "--bf16" in argv and argv[argv.index("--DDP-impl") + 1] == "local"
    cfg = load_section(config, "training", TrainingConfig)
    assert (cfg.compute_dtype(True), cfg.compute_dtype(False)) == ("bfloat16", "float32")


def test_a_longer_run_keeps_its_decay_window_and_overrides_the_forks_check(tmp_path, base, capsys):
    config = _config(tmp_path, base)
    _fork_save(tmp_path, base)  # finished: 4 iterations of 4 samples, decayed over 16
    rc, argv, err = _argv(config, capsys)
    assert rc == 0 and "--override-opt_param-scheduler" not in argv  # the same schedule: nothing to override
    assert "a resubmission trains nothing more" in err
    rc, argv, err = _argv(config, capsys, "training.train_iters=8")
    assert argv[argv.index("--train-samples") + 1] == "32" and argv[argv.index("--lr-decay-samples") + 1] == "16"
    assert "--override-opt_param-scheduler" in argv  # else the fork asserts wd_incr_steps 32 == 16 and dies
    assert "extends the run: its checkpoints were made for 4 iterations, it now continues from iteration 4 to 8" in err
    assert "keeps its checkpoint's decay window of 16 samples (to iteration 4): iterations 5..8 train at min_lr" in err
    rc, argv, err = _argv(config, capsys, "training.train_iters=8", "training.lr_decay_samples=32")
    assert argv[argv.index("--lr-decay-samples") + 1] == "32" and "--override-opt_param-scheduler" in argv
    assert "lr_decay_steps: checkpoint 16, this run 32" in err and "the learning rate at the resume point" in err


def test_the_schedule_decision_for_the_local_engine_is_the_same():
    cfg = load_section(None, "training", TrainingConfig, ["train_iters=8", "global_batch_size=4", "micro_batch_size=1",
                                                         "lr=0.001", "min_lr=0.0", "lr_warmup_samples=4"])
    state = {"max_lr": 1e-3, "lr_warmup_steps": 4, "num_steps": 16, "lr_decay_style": "cosine", "lr_decay_steps": 16,
             "min_lr": 0.0, "start_wd": 0.1, "end_wd": 0.1, "wd_incr_style": "constant", "wd_incr_steps": 16}
    decision = resume_schedule(cfg, state, 16)
    assert decision.decay_samples == 16 and decision.override
    assert decision.warnings and "(at lr 0 they change nothing)" in decision.warnings[0]
    same = resume_schedule(load_section(None, "training", TrainingConfig, [
        "train_iters=4", "global_batch_size=4", "micro_batch_size=1", "lr=0.001", "min_lr=0.0",
        "lr_warmup_samples=4"]), state, 8)
    assert (same.decay_samples, same.override, same.warnings) == (16, False, ())


def test_a_save_folder_from_before_records_is_refused_until_the_user_adopts_it(tmp_path, base, capsys):
    """A run whose save folder predates its record (the fork's checkpoints, no run_manifest.json) is never written
    into on a guess; ``training.launch adopt`` makes it the run's own once, and only while it holds nothing else."""
    config = _config(tmp_path, base)
    _fork_save(tmp_path, base, record=False)
    rc, _, err = _argv(config, capsys)
    assert rc == 2 and "no run_manifest.json of training.finetune proves it is one" in err
    assert "adopt it once: python -m training.launch adopt --config RUN.yaml" in err
    notes = tmp_path / "save" / "notes.txt"
    notes.write_text("mine")
    assert main(["adopt", "--config", str(config)]) == 2
    assert "holds notes.txt, which training.finetune does not write" in capsys.readouterr().err
    assert not (tmp_path / "save" / "run_manifest.json").exists()
    notes.unlink()
    assert main(["adopt", "--config", str(config)]) == 0
    assert "adopted" in capsys.readouterr().out
    rc, argv, _ = _argv(config, capsys)
    assert rc == 0 and argv[argv.index("--load") + 1] == str(tmp_path / "save")  # resumed
    assert main(["adopt", "--config", str(config), f"training.save={base}"]) == 2  # a release is a start, not a run
    assert "no latest_checkpointed_iteration.txt naming an iteration" in capsys.readouterr().err


def test_preflight_says_what_an_extended_run_will_do_with_its_schedule(tmp_path, base, capsys):
    """``training.launch preflight`` on a fork save with ``train_iters`` raised (and another max lr): the notes of
    ``training.resume.schedule_resume``, as the job will print them, and nothing refused."""
    sample = FORK_FIXTURES / "sample"  # data preflight can open (the fixture's maps were packed for seq 256)
    config = _config(tmp_path, base)
    (tmp_path / "train.txt").write_text(f'"train: 1.0 0:1 {sample}"\n')
    _fork_save(tmp_path, base, train_weighted_split_paths=[[str(sample)]])  # finished: 4 iterations, decay 16
    site = tmp_path / "site.env"
    site.write_text(site_env_text(stand_in_checkout(tmp_path / "fork")))
    rc = main(["preflight", "--config", str(config), f"cluster.site_env={site}", "training.train_iters=8",
               "training.lr=0.002"])
    out, err = capsys.readouterr()
    assert rc == 0 and "preflight: OK" in out, err
    notes = [line for line in err.splitlines() if line.startswith("note: ")]
    assert "note: extends the run: its checkpoints were made for 4 iterations, it now continues from iteration 4 to 8" \
        in notes
    assert any(n.startswith("note: training.lr_decay_samples is 0, so the resumed run keeps its checkpoint's decay"
                            " window of 16 samples (to iteration 4): iterations 5..8 train at min_lr") for n in notes)
    assert any(n.startswith("note: max_lr: checkpoint 0.001, this run 0.002 (the run config's value applies from"
                            " iteration 5)") for n in notes), notes
