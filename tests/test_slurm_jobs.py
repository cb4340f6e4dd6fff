"""The whole cluster path on a real one-node SLURM: submit -> sbatch -> srun -> torchrun -> the local engine.

One module-scoped cluster (``tests/slurm_cluster.py``); three jobs on the tiny model, in order: a start (4
iterations: checkpoint and log checked), a resume that is cancelled with ``scancel`` mid-run (its log shows
where it resumed), and a resubmission that continues from the last checkpoint the cancelled job saved, with
every iteration logged exactly once. The run folder's name holds spaces and shell metacharacters, which must
stay inert. Skipped (with the reason) only where slurm-wlm/munge cannot be installed.
"""
import contextlib
import io
import json
import shlex
import shutil
import time
from pathlib import Path

import pytest
import yaml

from conversion.checkpoint_format import read_tracker
from tests.conftest import FORK_FIXTURES, REPO_ROOT
from tests.fork_stand_in import site_env_text, stand_in_checkout
from tests.local_engine_fixtures import PYTHON, released_pretraining, run_overrides, tiny_release
from tests.slurm_cluster import free_ports, slurm_cluster, submit_in_process  # noqa: F401  (the fixture)
from training.cluster.launch import main

ODD = "run dir $(touch injected); `touch injected2`"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("slurm") / ODD
    tmp.mkdir()
    base = tiny_release(tmp)
    site = tmp / "site.env"
    site.write_text(f"export PATH={shlex.quote(str(Path(PYTHON).parent))}:\"$PATH\"\n"
                    f"export PYTHONPATH={shlex.quote(str(REPO_ROOT))}\n"
                    "export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=1\n")
    # a fixed decay horizon, so that resubmitting with another train_iters keeps the schedule
    overrides = run_overrides(tmp, base, tmp / "save", train_iters=4, save_interval=2, eval_interval=2,
                              tensorboard="false", lr_decay_samples=4000)
    training = {}
    for item in overrides:
        key, value = item.split("=", 1)
        training[key.split(".", 1)[1]] = value if "/" in value else yaml.safe_load(value)  # paths stay text
    cluster = {"gpus_per_node": 1, "request_gpus": False, "exclusive": False, "site_env": str(site),
               "rdzv_port": free_ports(1)[0], "time": "10", "job_name": "tiny"}
    config = tmp / "run.yaml"
    config.write_text(yaml.safe_dump({"training": training, "cluster": cluster}))
    return tmp, config



def _train_iterations(save):
    records = [json.loads(line) for line in (save / "metrics.jsonl").read_text().splitlines()]
    return [r["iteration"] for r in records if r["kind"] == "train"]


def test_submit_resume_cancel_resubmit(slurm_cluster, tiny_run, monkeypatch):
    tmp, config = tiny_run
    save = tmp / "save"
    for key, value in slurm_cluster.env.items():
        if key in ("SLURM_CONF", "PATH"):
            monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp)  # sbatch --chdir is the folder submit runs in

    # 1. a start: four iterations, a checkpoint every two
    job, log = submit_in_process(config)
    assert slurm_cluster.wait(job) == "COMPLETED", log.read_text()[-3000:]
    text = log.read_text()
    assert f"start: {save} has no checkpoint" in text and "iteration 4: saved checkpoint" in text
    assert read_tracker(save) == "4" and (save / "iter_0000004" / "mp_rank_00" / "model_optim_rng.pt").is_file()

    # 2. the same run, longer: it resumes at iteration 4; cancel it once it has saved past iteration 8
    job, log = submit_in_process(config, "training.train_iters=100000")
    deadline = time.monotonic() + 300
    while int(read_tracker(save)) < 8:
        assert time.monotonic() < deadline and slurm_cluster.job_state(job) in ("PENDING", "RUNNING"), log.read_text()
        time.sleep(0.2)
    # a second job for the same save folder is refused while this one runs
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        assert main(["submit", "--config", str(config)]) == 2
    assert f"{job} (RUNNING) of this run is still queued or running" in err.getvalue()
    slurm_cluster.run(["scancel", job])
    assert slurm_cluster.wait(job) == "CANCELLED"
    text = log.read_text()
    assert f"resume: {save} holds this run's checkpoints" in text
    assert f"restored: model weights from {save / 'iter_0000004'}" in text and "data position iteration 4" in text
    time.sleep(6)  # past KillWait: nothing of the cancelled job may still write
    last = int(read_tracker(save))
    assert last >= 8 and (save / f"iter_{last:07d}" / "mp_rank_00" / "model_optim_rng.pt").is_file()

    # 3. resubmitted: it continues from the last checkpoint the cancelled job saved, and finishes
    job, log = submit_in_process(config, f"training.train_iters={last + 2}")
    assert slurm_cluster.wait(job) == "COMPLETED", log.read_text()[-3000:]
    text = log.read_text()
    assert f"restored: model weights from {save / f'iter_{last:07d}'}" in text
    assert read_tracker(save) == str(last + 2)
    # nothing lost, nothing done twice: every iteration is in the metrics once, in order
    assert _train_iterations(save) == list(range(1, last + 3))
    status = _status(config, f"training.train_iters={last + 2}")
    states = [line.split(": ", 1)[1].split(";")[0] for line in status.splitlines() if line.startswith("job ")]
    assert states[0] == states[2] == "COMPLETED (exit 0:0)" and states[1].startswith("CANCELLED"), status
    assert str(log) in status and f"last logged: iteration {last + 2} of {last + 2}" in status
    assert not list(tmp.rglob("injected*")) and not list(Path.cwd().glob("injected*"))


def _status(config, *overrides):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["status", "--config", str(config), *overrides]) == 0
    return out.getvalue()


def test_megatron_engine_jobs_start_resubmit_and_extend(slurm_cluster, tiny_run, monkeypatch):
    """engine: megatron through the same path, with a stand-in checkout whose finetune_mtf.py writes what the fork
    writes (checkpoints, tracker, SAVE/logs, SAVE/tensorboard, index maps next to the data) and records its argv."""
    tmp, config = tiny_run
    # the data folder outside the odd run folder: the split-file format cannot hold whitespace
    fork, seen, data = stand_in_checkout(tmp / "fake Megatron-LM"), tmp / "seen", tmp.parent / "data"
    seen.mkdir()
    data.mkdir()
    for path in FORK_FIXTURES.glob("sample_*_document.*"):  # the fork writes its index maps next to the data
        shutil.copyfile(path, data / path.name)
    (data / "train.txt").write_text(f'"train: 1.0 0:1 {data / "sample"}"\n')
    megatron_site = tmp / "megatron site.env"
    megatron_site.write_text(site_env_text(fork, SEEN=str(seen)))
    save = tmp / "fork save"
    # the start: a release prepare_release made from a pretraining checkpoint that recorded 400 consumed samples
    pretrained = released_pretraining(tmp / "base", tmp.parent / "pretrained", 400)
    overrides = ["training.engine=megatron", f"training.load={pretrained}", f"training.save={save}",
                 f"training.train_split_file={data / 'train.txt'}",
                 "training.valid_split_file=", "training.tensorboard=true", "cluster.gpus_per_node=2",
                 f"cluster.site_env={megatron_site}",
                 f"cluster.rdzv_port={free_ports(1)[0]}"]
    for key in ("SLURM_CONF", "PATH"):
        monkeypatch.setenv(key, slurm_cluster.env[key])
    monkeypatch.chdir(tmp)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["argv", "--config", str(config), *overrides, "--json"]) == 0
    expected = json.loads(out.getvalue())["argv"]
    assert "--finetune" in expected
    job, log = submit_in_process(config, *overrides)
    assert slurm_cluster.wait(job) == "COMPLETED", log.read_text()[-3000:]
    # a fresh start's data position is 0 (--reset-progress), not the pretraining run's 400 samples
    assert "iteration        1/       4 | consumed samples:            4 |" in log.read_text()
    ranks = {p.name: json.loads(p.read_text()) for p in seen.glob("rank*.json")}
    assert sorted(ranks) == ["rank0.json", "rank1.json"], log.read_text()[-3000:]
    for rank, record in enumerate(ranks[f"rank{r}.json"] for r in range(2)):
        assert record["argv"] == expected  # the values arrive as Python built them, spaces included
        assert record["env"]["RANK"] == str(rank) and record["env"]["WORLD_SIZE"] == "2"
    assert sorted(p.name for p in save.iterdir()) == [
        "iter_0000002", "iter_0000004", "latest_checkpointed_iteration.txt", "logs", "run_manifest.json", "slurm",
        "tensorboard"]  # submit's record (the folder is the run's own), then what the fork writes
    assert list(data.glob("sample_train_indexmap_16ns_1234s_decoder_packed_*_idx.npy"))
    status = _status(config, *overrides)
    assert f"job {job} (" in status and "COMPLETED (exit 0:0)" in status and str(log) in status
    assert "last logged: iteration 4 of 4" in status and f"latest checkpoint: {save / 'iter_0000004'}" in status
    assert "a resubmission would resume from iteration 4" in status and "trains nothing more" in status

    # README step 4: submit the same config again (the save folder holds the fork's logs/ and tensorboard/)
    longer = [*overrides, "training.train_iters=6", f"cluster.rdzv_port={free_ports(1)[0]}"]
    assert "extends the run: its checkpoints were made for 4 iterations" in _status(config, *longer)
    job2, log2 = submit_in_process(config, *longer)
    assert slurm_cluster.wait(job2) == "COMPLETED", log2.read_text()[-3000:]
    text = log2.read_text()
    assert f"resume: {save} holds this run's checkpoints" in text and "iteration        5/       6" in text
    resumed = json.loads((seen / "rank0.json").read_text())["argv"]
    assert resumed[resumed.index("--load") + 1] == str(save) and "--finetune" not in resumed
    assert "--override-opt_param-scheduler" in resumed and resumed[resumed.index("--lr-decay-samples") + 1] == "4000"
    status = _status(config, *longer)
    assert f"job {job} (" in status and f"job {job2} (" in status and "last logged: iteration 6 of 6" in status
    assert not list(tmp.rglob("injected*"))
