"""The BigCode harness's exact settings: the length budget counts the prompt, its execution prelude, labelled subsets."""
import json

import pytest
import torch

from evaluation import commands
from evaluation.generate import generate_texts
from evaluation.generation_options import GenerationSettings
from evaluation.python_programs import harness_wrapped
from evaluation.sandbox import Sandbox, SandboxLimits
from tests.evaluation_fixtures import tiny_hf_folder, tiny_tokenizer
from tests.tiny_hf_checkpoints import tiny_model

PROMPTS = ["def add(a, b):\n    return", 'import os\n\n\ndef list_files(path):\n    """List the files."""\n', "x = 1"]


@pytest.fixture(scope="module")
def box():
    return Sandbox(SandboxLimits(timeout_s=3.0))


def test_budget_is_prompt_plus_generation_as_model_generate_max_length():
    model, tokenizer = tiny_model(seed=3), tiny_tokenizer()
    settings = GenerationSettings(n=1, temperature=0, max_length_generation=24, batch_size=3, stop_sequences=())
    outputs = generate_texts(model, tokenizer, PROMPTS, settings, progress=False)
    for prompt, [output] in zip(PROMPTS, outputs):
        ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
        # what the harness calls: model.generate(max_length=512) counts the prompt's tokens too
        reference = model.generate(ids, attention_mask=torch.ones_like(ids), max_length=24, do_sample=False,
                                   pad_token_id=0, eos_token_id=0)[0, ids.shape[1]:].tolist()
        assert list(output.token_ids) == reference and output.new_tokens == 24 - ids.shape[1]


def test_a_prompt_over_the_budget_gets_no_new_token():
    model, tokenizer = tiny_model(seed=3), tiny_tokenizer()
    long_prompt = "x = 1\n" * 40
    settings = GenerationSettings(n=1, temperature=0, max_length_generation=16, stop_sequences=())
    [[cut], [fine]] = generate_texts(model, tokenizer, [long_prompt, "x ="], settings, progress=False)
    assert cut.prompt_truncated and cut.new_tokens == 0 and cut.text == ""
    assert not fine.prompt_truncated and fine.new_tokens == 16 - len(tokenizer("x =")["input_ids"])
    lenient = GenerationSettings(n=1, temperature=0, max_new_tokens=4, stop_sequences=())
    [[more]] = generate_texts(model, tokenizer, [long_prompt], lenient, progress=False)
    assert more.new_tokens == 4  # --max-new-tokens: new tokens whatever the prompt's length


@pytest.mark.parametrize("program, result", [
    ("assert __name__ == 'builtins'", "passed"),  # exec(program, {}): no __main__
    ("if __name__ == '__main__':\n    raise SystemExit(1)", "passed"),
    ("print('x' * (4 << 20))", "passed"),  # swallowed: printing is never a failure
    ("import sys\nsys.stdout.write('y' * (4 << 20))", "passed"),
    ("exit(0)", "failed: TypeError: 'NoneType' object is not callable"),  # reliability_guard
    ("import os\nos.remove('x')", "failed: TypeError: 'NoneType' object is not callable"),
    ("input()", "failed: OSError"),  # stdin is the harness's write-only stream
    ("assert 1 == 2", "failed: AssertionError"),
])
def test_the_harness_prelude(box, program, result):
    assert box.run(harness_wrapped(program)).result == result


def test_generate_in_harness_mode_records_the_mode_and_rescores_the_same(tmp_path, capsys):
    hf = tiny_hf_folder(tmp_path / "hf")
    out = tmp_path / "run"
    assert commands.main(["humaneval", "--model", str(hf), "--out", str(out), "--limit", "2", "--n", "2",
                          "--batch-size", "4", "--k", "1,2", "--no-progress", "--timeout", "2"]) == 0
    assert "SUBSET" in capsys.readouterr().out
    settings = json.loads((out / "settings.json").read_text())
    assert settings["length_budget"] == {"mode": "harness", "max_length_generation": 512, "prompt_included": True,
                                         "as_bigcode_harness": True}
    assert settings["subset"] == "subset: 2 of 164 problems (--limit or a partial samples file)"
    results = json.loads((out / "results.json").read_text())
    assert results["subset"] == settings["subset"] and {r["stopped"] for r in results["results"]} <= {"eos", "stop",
                                                                                                      "length"}
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert all("harness_completion" in s for s in samples)
    again = tmp_path / "again.json"
    assert commands.main(["humaneval", "--samples", str(out / "samples.jsonl"), "--out", str(again), "--k", "1,2",
                          "--no-progress", "--timeout", "2"]) == 0
    assert [r["result"] for r in json.loads(again.read_text())["results"]] == [r["result"] for r in results["results"]]
    lenient = tmp_path / "lenient"
    assert commands.main(["humaneval", "--model", str(hf), "--out", str(lenient), "--limit", "1", "--n", "1",
                          "--temperature", "0", "--max-new-tokens", "4", "--no-progress"]) == 0
    assert json.loads((lenient / "settings.json").read_text())["length_budget"]["mode"] == "max_new_tokens"
