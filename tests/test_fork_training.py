"""The fork's own training loop behind the project's unmodified cluster path, on CPU, against the local engine.

Runs when ``MEGATRON_DIR`` names a checkout of the BigCode fork's ``mtf`` branch; skipped otherwise, with the
reason (CI has no fork)::

    git clone -b mtf https://github.com/bigcode-project/Megatron-LM /path/to/Megatron-LM
    .venv/bin/pip install -e '.[fork]'          # six and pybind11: the fork's start-up imports / builds with them
    MEGATRON_DIR=/path/to/Megatron-LM .venv/bin/python -m pytest -q tests/test_fork_training.py

The path: data from ``dataset.preprocess`` and ``dataset.splits write`` (absolute prefixes by default), a release
from ``conversion.hf_to_megatron`` re-released by ``conversion.prepare_release`` as from a pretraining checkpoint
that recorded 400 consumed samples (a start must still begin at data position 0), then the fork's real
``finetune_mtf.py`` through ``training.launch submit`` -> ``finetune_starcoderbase.sh`` -> sbatch -> srun ->
torchrun on the private SLURM of ``tests/slurm_cluster.py``.
The job's site env adds ``tests/fork_shims`` to ``PYTHONPATH``: import-time shims (apex stand-ins, CUDA plumbing
to CPU, gloo for NCCL, two names newer torch/numpy removed; each listed with why in its ``sitecustomize.py``; none
changes the model's or the optimizer's math, no file of the fork is edited) and sets
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` (the fork's ``torch.load`` predates torch 2.6's ``weights_only`` default;
it loads its own and this toolkit's checkpoints). Dropout is 0 on both sides (``training.hidden_dropout``/
``attention_dropout``): on CPU the fork's dropout draws from another generator than the engine's.

Three jobs: (1) a start, 4 iterations, checkpoints at 2 and 4; (2) the run cut back to its checkpoint at 2 (as
after a time limit) and resubmitted: it resumes there and trains 3 and 4 again; (3) resubmitted with
``train_iters=6``: extended, keeping its decay window. The local engine runs the same config (4, then extended
to 6). Compared: every iteration's loss (within 1e-5 relative), learning rate and gradient norm; the resumed
iterations against the first job's; the fork's train index maps against the engine's, byte for byte; the fork's
last checkpoint converts with ``megatron_to_hf`` and its weights equal the engine's (1e-5 + 1e-4 x the tensor's
largest value).
"""
import json
import os
import time
from pathlib import Path

import pytest
import yaml

from conversion.checkpoint_format import read_tracker
from tests.conftest import FORK_FIXTURES
from tests.fork_stand_in import site_env_text
from tests.local_engine_fixtures import TOKENIZER, released_pretraining
from tests.slurm_cluster import free_ports, slurm_cluster, submit_in_process  # noqa: F401  (the fixture)

RTOL = 1e-5


@pytest.fixture(scope="module")
def fork_checkout() -> Path:
    folder = os.environ.get("MEGATRON_DIR", "")
    if not folder or not (Path(folder) / "finetune_mtf.py").is_file():
        pytest.skip("MEGATRON_DIR does not point at a checkout of the BigCode Megatron-LM fork's mtf branch")
    for module in ("six", "pybind11"):
        pytest.importorskip(module, reason=f"the fork needs {module} at start: pip install -e '.[fork]'")
    return Path(folder)


def _tiny_release(tmp: Path) -> Path:
    import torch
    from transformers import GPTBigCodeConfig, GPTBigCodeForCausalLM

    from conversion.hf_to_megatron import main as hf_to_megatron

    config = GPTBigCodeConfig(vocab_size=8192, n_positions=256, n_embd=64, n_layer=2, n_head=4, multi_query=True,
                              activation_function="gelu_pytorch_tanh", bos_token_id=0, eos_token_id=0)
    torch.manual_seed(11)
    GPTBigCodeForCausalLM(config).save_pretrained(tmp / "hf")
    assert hf_to_megatron(["--hf", str(tmp / "hf"), "--out", str(tmp / "converted"), "--tp", "1", "--pp", "1"]) == 0
    # the start as after pretraining: prepare_release keeps the 400 samples the iter_* recorded, which the fork
    # would take as its data position (and die: no samples left) were the start not passed --reset-progress
    return released_pretraining(tmp / "converted", tmp / "base", 400)


def _data(tmp: Path) -> Path:
    from dataset.preprocessing.preprocess import main as preprocess
    from dataset.splitting.splits import main as splits

    data = tmp / "data"
    assert preprocess(["--input", str(FORK_FIXTURES / "sample.jsonl"), "--tokenizer", str(TOKENIZER),
                       "--output-prefix", str(data / "pairs"), "--valid-fraction", "0.2", "--workers", "1"]) == 0
    for role, prefix in (("train", "pairs"), ("valid", "pairs_valid")):  # relative: written absolute
        out = data / f"{role}_data_paths.txt"
        assert splits(["write", "--out", str(out), "--name", role, f"1.0 0:1 {prefix}"]) == 0
    return data


@pytest.fixture(scope="module")
def fork_run(fork_checkout, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fork_training")
    data, base = _data(tmp), _tiny_release(tmp)
    site = tmp / "site.env"
    site.write_text(site_env_text(fork_checkout, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1"))
    training = {"engine": "megatron", "load": str(base), "save": str(tmp / "save"), "tokenizer": str(TOKENIZER),
                "train_split_file": str(data / "train_data_paths.txt"),
                "valid_split_file": str(data / "valid_data_paths.txt"), "seq_length": 256, "micro_batch_size": 2,
                "global_batch_size": 4, "train_iters": 4, "lr": 1e-3, "min_lr": 1e-4, "lr_warmup_samples": 4,
                "save_interval": 2, "eval_interval": 2, "eval_iters": 1, "hidden_dropout": 0.0,
                "attention_dropout": 0.0, "cpu_threads": 1, "progress_bar": False}
    cluster = {"gpus_per_node": 1, "request_gpus": False, "exclusive": False, "site_env": str(site),
               "rdzv_port": free_ports(1)[0], "time": "20", "job_name": "forktest"}
    config = tmp / "run.yaml"
    config.write_text(yaml.safe_dump({"training": training, "cluster": cluster}))
    return tmp, config



def _event_files(save: Path) -> list[Path]:
    """The fork's TensorBoard files, one per job, oldest first (their names hold the start time)."""
    return sorted((save / "tensorboard").glob("events.out.tfevents.*"), key=lambda p: int(p.name.split(".")[3]))


def _fork_scalars(event_file: Path) -> dict[str, dict[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(event_file), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: {e.step: e.value for e in events.Scalars(tag)} for tag in ("lm loss", "learning-rate", "grad-norm")}


def _engine(config, save: Path, iters: int) -> dict[int, dict]:
    from runconfig import load_section
    from runconfig.training_section import TrainingConfig
    from training.local.engine import train

    cfg = load_section(config, "training", TrainingConfig, ["training.engine=local", f"training.save={save}",
                                                             f"training.train_iters={iters}"])
    train(cfg, say=lambda _m: None)
    records = [json.loads(line) for line in (save / "metrics.jsonl").read_text().splitlines()]
    return {r["iteration"]: r for r in records if r["kind"] == "train"}


def _close(a: float, b: float, rtol: float = RTOL) -> bool:
    return abs(a - b) <= rtol * abs(b)


def test_the_forks_own_loop_equals_the_local_engine(slurm_cluster, fork_run, monkeypatch, capsys):
    tmp, config = fork_run
    save, local = tmp / "save", tmp / "local"
    for key in ("SLURM_CONF", "PATH"):
        monkeypatch.setenv(key, slurm_cluster.env[key])
    monkeypatch.chdir(tmp)
    started = time.monotonic()

    job, log = submit_in_process(config)  # 1. a start
    assert slurm_cluster.wait(job, timeout=600) == "COMPLETED", log.read_text()[-4000:]
    assert read_tracker(save) == "4" and (save / "logs" / "logs_rank_0.txt").is_file()
    first = _fork_scalars(_event_files(save)[0])
    assert sorted(first["lm loss"]) == [1, 2, 3, 4], log.read_text()[-4000:]

    (save / "latest_checkpointed_iteration.txt").write_text("2")  # 2. cut back to iteration 2, resubmitted
    for path in sorted((save / "iter_0000004").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    (save / "iter_0000004").rmdir()
    job2, log2 = submit_in_process(config)
    assert slurm_cluster.wait(job2, timeout=600) == "COMPLETED", log2.read_text()[-4000:]
    resumed = _fork_scalars(_event_files(save)[1])
    assert f"resume: {save} holds this run's checkpoints" in log2.read_text() and sorted(resumed["lm loss"]) == [3, 4]

    job3, log3 = submit_in_process(config, "training.train_iters=6")  # 3. extended
    assert slurm_cluster.wait(job3, timeout=600) == "COMPLETED", log3.read_text()[-4000:]
    extended = _fork_scalars(_event_files(save)[2])
    argv = json.loads(next((save / "slurm" / "jobs").glob(f"*/argv-{job3}.json")).read_text())["argv"]
    assert "--override-opt_param-scheduler" in argv and argv[argv.index("--lr-decay-samples") + 1] == "16"
    assert "extends the run: its checkpoints were made for 4 iterations" in log3.read_text()
    assert sorted(extended["lm loss"]) == [5, 6] and read_tracker(save) == "6"
    fork_seconds = time.monotonic() - started

    engine = {**_engine(config, local, 4), **_engine(config, local, 6)}
    fork = {tag: {**first[tag], **resumed[tag], **extended[tag]} for tag in first}
    report = []
    for it in range(1, 7):
        loss, mine = fork["lm loss"][it], engine[it]["loss"]
        report.append(f"iteration {it}: fork {loss:.8f} engine {mine:.8f} rel {abs(loss - mine) / mine:.1e}")
        assert _close(loss, mine), report
        assert _close(fork["grad-norm"][it], engine[it]["grad_norm"], 1e-4), (it, fork["grad-norm"][it], engine[it])
        if it < 6:  # the fork logs the rate set after its step: the next iteration's
            assert _close(fork["learning-rate"][it], engine[it + 1]["lr"], 1e-6), (it, fork["learning-rate"], engine)
    for it in (3, 4):  # the fork's own resume is exact
        assert _close(resumed["lm loss"][it], first["lm loss"][it]), (it, resumed, first)
    assert engine[5]["lr"] == engine[6]["lr"] == pytest.approx(1e-4)  # past the kept decay window: min_lr
    # the index maps the fork wrote next to the data are the engine's
    maps = sorted((tmp / "data").glob("pairs_train_indexmap_*_idx.npy"))
    assert len(maps) == 4  # 16 and 24 samples, batch and shuffle
    for path in maps:
        assert path.read_bytes() == (local / "index_maps" / path.name).read_bytes(), path.name
    worst = _converts_to_the_engines_weights(save, local, tmp)
    with capsys.disabled():
        print(f"\nfork vs local engine ({fork_seconds:.0f} s of fork jobs; largest weight difference after 6"
              f" iterations {worst:.1e}):\n  " + "\n  ".join(report))


def _converts_to_the_engines_weights(save: Path, local: Path, tmp: Path) -> float:
    """Converts the fork's last checkpoint; returns the largest weight difference to the engine's."""
    import torch

    from conversion.megatron_checkpoint import read_megatron_checkpoint
    from conversion.megatron_to_hf import main as megatron_to_hf
    from transformers import GPTBigCodeForCausalLM

    assert megatron_to_hf(["--megatron", str(save), "--out", str(tmp / "fork_hf"), "--tokenizer", str(TOKENIZER)]) == 0
    converted = GPTBigCodeForCausalLM.from_pretrained(str(tmp / "fork_hf")).state_dict()
    engine = read_megatron_checkpoint(local).hf_state_dict
    assert converted["transformer.wte.weight"].shape == (8192, 64)
    worst = 0.0
    for name, tensor in engine.items():  # Adam moves every weight by about lr per step (6e-3 here), whatever its size
        difference = (converted[name] - tensor).abs().max().item()
        worst = max(worst, difference)
        assert difference <= 1e-5 + 1e-4 * tensor.abs().max().item(), (name, difference)
    assert not torch.equal(converted["transformer.h.0.attn.c_attn.weight"],
                           GPTBigCodeForCausalLM.from_pretrained(str(tmp / "hf")).state_dict()[
                               "transformer.h.0.attn.c_attn.weight"])  # it trained
    return worst
