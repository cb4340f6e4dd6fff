"""``training.launch status``'s readers: SLURM's answers and the fork's log lines (the whole command runs on a
private SLURM in ``tests/test_slurm_jobs.py``), and what it says a resubmission would do: start, resume (a Llama
run of the local engine, whose checkpoints are in the Hugging Face layout), extend, or be refused."""
from pathlib import Path
from types import SimpleNamespace

import pytest

from runconfig import load_section
from runconfig.run_config import load_run_config
from runconfig.training_section import TrainingConfig
from tests.local_engine_fixtures import run_overrides, tiny_hf
from training.cluster.run_status import fork_progress, parse_sacct, parse_scontrol, progress_line, status_lines
from training.local.engine import train

# a line of the fork's own log (finetune_mtf.py on CPU, tests/test_fork_training.py), structured-logs prefix included
FORK_LINE = ("2026-12-06 15:43:23,506 [Rank 0]:  iteration        2/       4 | consumed samples:            8 |"
             " elapsed time per iteration (ms): 186.6 | learning rate: 7.750E-04 | global batch size:     4 |"
             " lm loss: 8.993624E+00 | loss scale: 1.0 | grad norm: 1.791 | number of skipped iterations:   0 |"
             " number of nan iterations:   0 | TFLOPs: 0.02 |")


def test_the_forks_last_iteration_line_gives_loss_throughput_and_eta(tmp_path):
    log = tmp_path / "job.out"
    log.write_text("starting\n" + FORK_LINE.replace("2/", "1/") + "\n" + FORK_LINE + "\nsaving checkpoint\n")
    progress = fork_progress(log)
    assert (progress.iteration, progress.loss, progress.seconds_per_iteration) == (2, 8.993624, 0.1866)
    cfg = SimpleNamespace(global_batch_size=4, seq_length=256, train_iters=4)
    assert progress_line(progress, cfg).startswith(
        "last logged: iteration 2 of 4, loss 8.9936, 5,488 tokens/s (0.187 s/iteration), ETA 0:00:00 for 2 iteration(s)")
    log.write_text("no iteration yet\n")
    assert fork_progress(log) is None


def test_slurm_answers_are_read():
    line = ("JobId=7 JobName=codeft-finetune UserId=root(0) JobState=TIMEOUT Reason=TimeLimit Dependency=(null)"
            " ExitCode=0:15 RunTime=00:10:00")
    assert parse_scontrol(line) == ("TIMEOUT", "0:15")
    assert parse_scontrol("slurm_load_jobs error: Invalid job id specified") is None
    assert parse_sacct("CANCELLED by 0|0:15\n") == ("CANCELLED", "0:15")
    assert parse_sacct("") is None


@pytest.fixture(scope="module")
def llama_run(tmp_path_factory):
    """A Llama run of the local engine stopped at iteration 2 (its checkpoints in the Hugging Face layout)."""
    tmp = tmp_path_factory.mktemp("status_llama")
    base, save = tiny_hf(tmp, "llama", dropout=0.0), tmp / "save"
    overrides = run_overrides(tmp, base, save, train_iters=2, save_interval=2, eval_interval=2, tensorboard=False)
    train(load_section(None, "training", TrainingConfig, overrides), say=lambda _m: None)
    config = tmp / "run.yaml"
    config.write_text("cluster:\n  gpus_per_node: 1\n  request_gpus: false\n")
    return config, ["training.engine=local", *overrides]


def _status(config, overrides, *more):
    return status_lines(load_run_config(config, [*overrides, *more]))


def test_status_of_a_hugging_face_family_run_reads_its_own_checkpoints(llama_run):
    config, overrides = llama_run
    save = Path(next(o for o in overrides if o.startswith("training.save=")).split("=", 1)[1])
    assert (save / "iter_0000002" / "train_state.pt").is_file()  # the HF layout: no mp_rank_XX folder
    lines = _status(config, overrides)
    assert "jobs: none submitted (python -m training.launch submit --config ...)" in lines
    assert lines[-2:] == ["a resubmission would resume from iteration 2",
                          "  schedule: the checkpoint is at iteration 2 = training.train_iters: a resubmission trains nothing more (raise training.train_iters to"
                          " extend the run)"]
    assert f"latest checkpoint: {save / 'iter_0000002'} (iteration 2)" in lines
    longer = _status(config, overrides, "training.train_iters=4")
    assert "a resubmission would resume from iteration 2" in longer and \
        any("extends the run: its checkpoints were made for 2 iterations" in line for line in longer)
    refused = _status(config, overrides, "training.seed=99")[-1]
    assert refused.startswith("a resubmission would be refused:") and "seed: checkpoint 1234, run 99" in refused


def test_status_says_a_resubmission_would_start_or_be_refused(tmp_path, llama_run):
    config, overrides = llama_run
    empty = [*overrides, f"training.save={tmp_path / 'new'}"]
    lines = _status(config, empty)
    assert "jobs: none submitted (python -m training.launch submit --config ...)" in lines
    assert "latest checkpoint: none" in lines and "last logged: no iteration yet" in lines
    base = next(o for o in overrides if o.startswith("training.load=")).split("=", 1)[1]
    assert lines[-1] == f"a resubmission would start: weights from {base}, nothing in {tmp_path / 'new'} to resume"
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "latest_checkpointed_iteration.txt").write_text("release")
    tracker = tmp_path / "new" / "latest_checkpointed_iteration.txt"
    assert _status(config, empty)[-1] == f"a resubmission would be refused: {tracker} says 'release', not an iteration"
