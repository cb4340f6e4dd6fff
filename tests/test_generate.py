"""Batched generation with the KV cache on a tiny in-process GPT-BigCode, and the generate-and-score command."""
import json

import pytest
import torch

from evaluation import commands
from evaluation.generate import cut_at_stop, generate_texts, pick_tokens
from evaluation.generation_options import GenerationSettings
from evaluation.humaneval_generate import completion_for
from tests.evaluation_fixtures import tiny_hf_folder, tiny_tokenizer
from tests.tiny_hf_checkpoints import tiny_model

PROMPTS = ["def add(a, b):\n    return", 'import os\n\n\ndef list_files(path):\n    """List the files."""\n', "x = 1"]


@pytest.fixture(scope="module")
def model_and_tokenizer():
    return tiny_model(seed=3), tiny_tokenizer()


def one_at_a_time(model, tokenizer, prompt, max_new_tokens):
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens, do_sample=False,
                         pad_token_id=0, eos_token_id=0)
    new = out[0, ids.shape[1]:].tolist()
    new = new[:new.index(0)] if 0 in new else new
    return tokenizer.decode(new, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def test_batched_greedy_equals_model_generate_one_prompt_at_a_time(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    settings = GenerationSettings(n=1, temperature=0, max_new_tokens=16, batch_size=3, stop_sequences=())
    batched = generate_texts(model, tokenizer, PROMPTS, settings, progress=False)
    assert [b[0].text for b in batched] == [one_at_a_time(model, tokenizer, p, 16) for p in PROMPTS]
    assert all(b[0].new_tokens == 16 and b[0].stopped == "length" for b in batched)


def test_generation_stops_at_a_stop_sequence(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    free = one_at_a_time(model, tokenizer, PROMPTS[2], 16)
    stop = free[len(free) // 2:len(free) // 2 + 3]  # a piece of what greedy decoding will produce anyway
    settings = GenerationSettings(n=1, temperature=0, max_new_tokens=16, batch_size=2, stop_sequences=(stop,))
    [[stopped]] = generate_texts(model, tokenizer, [PROMPTS[2]], settings, progress=False)
    assert stopped.stopped == "stop" and stopped.text == free[:free.index(stop)] and stopped.new_tokens < 16


def test_sampling_is_seeded_and_top_p_near_zero_is_greedy(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    sample = GenerationSettings(n=3, temperature=1.0, top_p=1.0, max_new_tokens=8, batch_size=4, stop_sequences=())
    first = generate_texts(model, tokenizer, PROMPTS[:2], sample, progress=False)
    again = generate_texts(model, tokenizer, PROMPTS[:2], sample, progress=False)
    assert [[g.text for g in p] for p in first] == [[g.text for g in p] for p in again]
    assert len({g.text for g in first[0]}) > 1  # temperature 1 on a random model: the samples differ
    narrow = GenerationSettings(n=2, temperature=1.0, top_p=1e-6, max_new_tokens=8, stop_sequences=())
    greedy = GenerationSettings(n=1, temperature=0, max_new_tokens=8, stop_sequences=())
    expected = generate_texts(model, tokenizer, PROMPTS[:1], greedy, progress=False)[0][0].text
    assert [g.text for g in generate_texts(model, tokenizer, PROMPTS[:1], narrow, progress=False)[0]] == [expected] * 2


def test_padded_vocabulary_ids_are_never_picked():
    logits = torch.zeros(2, 10)
    logits[:, 8:] = 100.0  # ids 8 and 9 do not exist in the tokenizer
    generator = torch.Generator().manual_seed(0)
    for settings in (GenerationSettings(n=1, temperature=0), GenerationSettings(temperature=1.0, top_p=0.9)):
        assert (pick_tokens(logits.clone(), settings, 8, generator) < 8).all()


def test_cut_at_stop_and_completion_for():
    assert cut_at_stop("    return x\ndef g():\n", ("\nclass", "\ndef")) == ("    return x", True)
    assert cut_at_stop("    return x", ("\ndef",)) == ("    return x", False)
    prompt = 'def f():\n    """Doc."""\n'
    assert prompt + completion_for(prompt, "\n    return 1") == prompt.strip() + "\n    return 1"
    assert completion_for(prompt, " pass") == " pass"


# bigcode-evaluation-harness, bigcode_eval/tasks/humaneval.py (commit 01762fc7), GeneralHumanEval.__init__: stop_words
HARNESS_HUMANEVAL_STOP_WORDS = ["\nclass", "\ndef", "\n#", "\n@", "\nprint", "\nif", "\n```", "<file_sep>"]


def _humaneval_settings():
    from evaluation.generation_options import settings_from_args

    return settings_from_args(commands.build_parser().parse_args(["humaneval", "--model", "m", "--out", "o"]))


def test_humaneval_generation_stops_where_the_harness_stops():
    assert list(_humaneval_settings().stop_sequences) == HARNESS_HUMANEVAL_STOP_WORDS


@pytest.mark.parametrize("stop", HARNESS_HUMANEVAL_STOP_WORDS)
def test_every_harness_stop_word_cuts_a_humaneval_completion(stop):
    text = "    return sorted(numbers)" + stop + " something the harness throws away\n"
    assert cut_at_stop(text, _humaneval_settings().stop_sequences) == ("    return sorted(numbers)", True)


def test_humaneval_generate_command(tmp_path):
    hf = tiny_hf_folder(tmp_path / "hf")
    out = tmp_path / "run"
    assert commands.main(["humaneval", "--model", str(hf), "--out", str(out), "--limit", "2", "--n", "2",
                          "--max-new-tokens", "8", "--batch-size", "4", "--k", "1,2,10", "--no-progress",
                          "--timeout", "2"]) == 0
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert [s["task_id"] for s in samples] == ["HumanEval/0"] * 2 + ["HumanEval/1"] * 2
    results = json.loads((out / "results.json").read_text())
    assert results["samples"] == 4 and results["problems"] == 2 and "pass@2" in results
    assert results["k_not_reported"] == [10] and len(results["results"]) == 4
    settings = json.loads((out / "settings.json").read_text())
    assert settings["generation"]["temperature"] == 0.2 and settings["generation"]["top_p"] == 0.95
    assert settings["generation"]["stop_sequences"][:2] == ["\nclass", "\ndef"] and settings["dtype"] == "torch.float32"
    assert results["generation"]["new_tokens"] == sum(s["new_tokens"] for s in samples)
    # greedy, and the folder of an earlier run may be reused; a folder with other files may not
    assert commands.main(["humaneval", "--model", str(hf), "--out", str(out), "--limit", "1", "--n", "1",
                          "--temperature", "0", "--max-new-tokens", "4", "--no-progress"]) == 0
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    assert commands.main(["humaneval", "--model", str(hf), "--out", str(tmp_path / "other"), "--limit", "1",
                          "--no-progress"]) == 2
    assert commands.main(["humaneval", "--model", str(hf), "--out", str(out), "--n", "3", "--temperature", "0"]) == 2
