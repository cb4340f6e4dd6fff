"""A fresh FSDP2 run reads its starting weights in rank 0 only: the other ranks build the model on the meta device
and receive their shards from rank 0 once it is sharded (training.local.fsdp_start). The run is the one every
rank loading the whole model gave, to the bit, dropout on: the tied head, the biases and RoPE's frequencies (a
buffer no state dict holds) of StarCoder2 included."""
import json
import subprocess

import pytest
import torch

from tests.local_engine_fixtures import PYTHON, run_overrides, subprocess_env, tiny_hf
from tests.test_engine_fsdp_hf import _losses, _weights

EXTRA = {"train_iters": 2, "save_interval": 2, "eval_interval": 2, "tensorboard": False, "fsdp": "true"}


def _run(tmp, base, mode):
    save = tmp / mode
    done = subprocess.run(
        [PYTHON, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc_per_node", "2",
         "-m", "tests.fsdp_start_driver", mode, str(tmp / mode), *run_overrides(tmp, base, save, **EXTRA)],
        env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads((tmp / f"{mode}.rank{r}.json").read_text()) for r in (0, 1)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fsdp_start")
    base = tiny_hf(tmp, "starcoder2", dropout=0.1)
    return tmp, base, _run(tmp, base, "broadcast"), _run(tmp, base, "every_rank")


def test_only_rank_0_reads_the_starting_weights(runs):
    tmp, base, (rank0, rank1), (old0, old1) = runs
    weights = str(base / "model.safetensors")
    assert weights in rank0["opened"] and rank0["devices"] == [["cpu"]]
    assert not [p for p in rank1["opened"] if p.startswith(str(base))] and rank1["devices"] == [["meta"]]
    assert weights in old1["opened"] and old1["devices"] == [["cpu"]]  # the trace sees what the former start read


def test_the_run_is_the_one_every_rank_loading_gave(runs):
    tmp = runs[0]
    assert _losses(tmp / "broadcast") == _losses(tmp / "every_rank")
    a, b = _weights(tmp / "broadcast" / "iter_0000002"), _weights(tmp / "every_rank" / "iter_0000002")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
