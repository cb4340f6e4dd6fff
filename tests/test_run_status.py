"""``training.launch status``'s readers: SLURM's answers and the fork's log lines (the whole command runs on a
private SLURM in ``tests/test_slurm_jobs.py``)."""
from types import SimpleNamespace

from training.run_status import fork_progress, parse_sacct, parse_scontrol, progress_line

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
