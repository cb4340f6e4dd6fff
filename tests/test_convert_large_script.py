"""conversion/convert_large.sh really converts and then verifies (run as a user runs it, through bash)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from transformers import GPTBigCodeConfig, GPTBigCodeForCausalLM

from conversion.megatron_checkpoint import write_megatron_checkpoint

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "conversion" / "convert_large.sh"
TOKENIZER = ROOT / "tests" / "fixtures" / "fork" / "tokenizer.json"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    # The script calls `python`: put this interpreter first on PATH, as an activated venv would.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, env=env, capture_output=True, text=True)


def test_converts_then_verifies_the_logits(tmp_path: Path) -> None:
    torch.manual_seed(4)
    # Vocabulary of the fork tokenizer (8192); the checkpoint records no tokenizer_file, like a download.
    config = GPTBigCodeConfig(vocab_size=8192, n_positions=64, n_embd=32, n_layer=2, n_head=4, n_inner=64,
                              multi_query=True, activation_function="gelu_pytorch_tanh")
    state = {k: v.detach().clone() for k, v in GPTBigCodeForCausalLM(config).state_dict().items()}
    write_megatron_checkpoint(tmp_path / "megatron", 20, state, config, tp=2, pp=2)
    result = _run(str(tmp_path / "megatron"), str(tmp_path / "hf"), "--tokenizer", str(TOKENIZER), "--dtype",
                  "bfloat16", "--no-progress")  # as the README calls it
    assert result.returncode == 0, result.stderr
    assert f"wrote {tmp_path / 'hf'}" in result.stdout  # step 1: megatron_to_hf
    assert f"B: megatron:{tmp_path / 'megatron'}" in result.stdout
    assert result.stdout.splitlines()[-1] == "MATCH"  # the verdict line ("MISMATCH" also ends with MATCH)
    assert (tmp_path / "hf" / "tokenizer.json").is_file()
    manifest = json.loads((tmp_path / "hf" / "conversion_manifest.json").read_text())
    assert (manifest["tp"], manifest["pp"], manifest["dtype"]) == (2, 2, "bfloat16")


def test_tag_converts_and_verifies_that_iteration_not_the_trackers(tmp_path: Path) -> None:
    config = GPTBigCodeConfig(vocab_size=8192, n_positions=64, n_embd=32, n_layer=2, n_head=4, n_inner=64,
                              multi_query=True, activation_function="gelu_pytorch_tanh")
    for seed, iteration in ((5, 10), (6, 20)):  # two different models; the tracker ends at iteration 20
        torch.manual_seed(seed)
        state = {k: v.detach().clone() for k, v in GPTBigCodeForCausalLM(config).state_dict().items()}
        write_megatron_checkpoint(tmp_path / "megatron", iteration, state, config)
    assert (tmp_path / "megatron" / "latest_checkpointed_iteration.txt").read_text().strip() == "20"
    result = _run(str(tmp_path / "megatron"), str(tmp_path / "hf"), "--tokenizer", str(TOKENIZER), "--tag", "10",
                  "--no-progress")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "MATCH"  # before: iteration 20 compared with a conversion of 10
    assert "Megatron tag 10" in result.stdout
    assert json.loads((tmp_path / "hf" / "conversion_manifest.json").read_text())["iteration"] == 10


def test_runs_the_python_named_by_PYTHON_without_one_on_PATH(tmp_path: Path) -> None:
    import shutil

    (tmp_path / "bin").mkdir()  # a PATH with no python at all: only $PYTHON can run the steps
    env = {**os.environ, "PATH": str(tmp_path / "bin"), "PYTHON": sys.executable, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([shutil.which("bash"), str(SCRIPT), str(tmp_path / "nothing"), str(tmp_path / "hf")],
                            cwd=ROOT, env=env, capture_output=True, text=True)
    # megatron_to_hf ran (under $PYTHON) and refused the missing checkpoint; not "python: command not found"
    assert result.returncode == 2 and "megatron_to_hf: error:" in result.stderr, result.stderr  # not 127
    assert str(tmp_path / "nothing") in result.stderr
