"""Inputs that used to end in a traceback are one line on stderr and exit status 2 (issue 16 item 18).

The other cases of the item live beside their commands: a damaged shard manifest or launch.json
(test_shard_merge, test_launch_shards), a name that is not UTF-8 (test_code_to_jsonl), ids beyond the model's
vocabulary and a pad id beyond it (test_tokenizer_match), ``--cache-dir FILE`` (test_gpt_samples),
``training.device=banana``, ``model_init --hidden 0`` and ``--device cuda`` without a GPU (test_config_values).
"""
from __future__ import annotations

import pytest

from evaluation.commands import main as evaluation_main
from tests.local_engine_fixtures import TOKENIZER
from training.launch import main as launch_main
from training.model_init import TinyModelSpec, write_tiny_release


def test_a_cut_model_safetensors_is_one_line(tmp_path, capsys):
    hf = tmp_path / "hf"
    write_tiny_release(TOKENIZER, tmp_path / "release", TinyModelSpec(layers=1, hidden=16, heads=2, max_positions=64),
                       hf)
    weights = hf / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a copy cut half-way
    out = tmp_path / "side_by_side.md"
    capsys.readouterr()
    assert evaluation_main(["compare", "--base", str(hf), "--tuned", str(hf), "--device", "cpu", "--out", str(out)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert len(err) == 1 and f"{hf}: its weights cannot be read" in err[0] and "copy or convert" in err[0], err
    assert not out.exists()


@pytest.mark.parametrize("content", ["[1, 2]\n", '{"script": "finetune_mtf.py"}\n', '{"script": 3, "argv": []}\n',
                                     '{"scr'])
def test_launch_exec_of_a_file_that_is_no_jobs_argv_is_one_line(tmp_path, capsys, content):
    job = tmp_path / "argv-1.json"
    job.write_text(content)
    assert launch_main(["exec", str(job)]) == 2  # a JSON list was a TypeError traceback
    err = capsys.readouterr().err
    assert err.startswith(f"error: {job}: ") and len(err.strip().splitlines()) == 1, err
    if content.startswith("["):
        assert "not a job's argv file" in err
    assert job.read_text() == content
