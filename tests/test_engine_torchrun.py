"""Two CPU processes under torchrun (gloo; DDP, and FSDP2) train the same weights as one process with the
same global batch."""
import subprocess

import pytest
import torch

from conversion.megatron_checkpoint import read_megatron_checkpoint
from tests.local_engine_fixtures import PYTHON, run_overrides, subprocess_env, tiny_release

EXTRA = {"train_iters": 4, "save_interval": 4, "eval_interval": 4, "tensorboard": False}


@pytest.fixture(scope="module")
def single_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("torchrun")
    base = tiny_release(tmp, dropout=0.0)  # dropout masks differ by process layout; the maths must not
    done = subprocess.run(
        [PYTHON, "-m", "training.finetune", *run_overrides(tmp, base, tmp / "one", **EXTRA)],
        env=subprocess_env(), capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stderr[-2000:]
    return tmp, base


@pytest.mark.parametrize("fsdp", [False, True], ids=["ddp", "fsdp2"])
def test_two_processes_match_one(single_run, fsdp):
    tmp, base = single_run
    save = tmp / f"two_fsdp{int(fsdp)}"
    double = subprocess.run(
        [PYTHON, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc_per_node", "2",
         "-m", "training.finetune", *run_overrides(tmp, base, save, fsdp=str(fsdp).lower(), **EXTRA)],
        env=subprocess_env(), capture_output=True, text=True, timeout=150)
    assert double.returncode == 0, double.stderr[-3000:]
    one, two = read_megatron_checkpoint(tmp / "one"), read_megatron_checkpoint(save)
    assert one.iteration == two.iteration == 4
    assert len(two.rng_state) == 2  # one RNG entry per data-parallel rank, as the fork stores them
    start = read_megatron_checkpoint(base).hf_state_dict
    moved = 0.0
    for name, tensor in one.hf_state_dict.items():
        torch.testing.assert_close(two.hf_state_dict[name], tensor, rtol=1e-4, atol=2e-6, msg=name)
        moved = max(moved, float((tensor - start[name]).abs().max()))
    assert moved > 1e-3  # the comparison is between weights that actually trained
    opt_one, opt_two = one.optimizer["state"], two.optimizer["state"]
    assert opt_one.keys() == opt_two.keys()
    for index, state in opt_one.items():  # FSDP2 gathers the sharded Adam moments back to full tensors
        torch.testing.assert_close(opt_two[index]["exp_avg"], state["exp_avg"], rtol=1e-3, atol=1e-7)
