"""`python -m conversion.verify logits`: identical models pass, a perturbed weight fails with the right numbers."""
from __future__ import annotations

import json

import pytest
import torch

from conversion.code_prompts import BUILTIN_PROMPTS, PromptFileError, load_prompts_file
from conversion.logit_compare import LogitThresholds, compare_logits, encode_prompts, load_token_encoder
from conversion.verify import main, write_json
from tests.conftest import FORK_FIXTURES
from tests.tiny_hf_checkpoints import save_bin, stored_state_dict, tiny_model

TOKENIZER = FORK_FIXTURES / "tokenizer.json"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Tiny matmuls on a shared 2-core machine: thread hand-offs cost more than they save, by 10x under load.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model():
    return tiny_model(seed=7)


@pytest.fixture(scope="module")
def model_dir(model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("hf_a")
    model.save_pretrained(folder)
    return folder


def _run(tmp_path, *argv):
    report_path = tmp_path / "logits.json"
    rc = main(["logits", *argv, "--tokenizer", str(TOKENIZER), "--json", str(report_path)])
    return rc, (json.loads(report_path.read_text()) if report_path.exists() else None)


def test_identical_models_in_different_layouts_pass(model, model_dir, tmp_path, capsys):
    other = save_bin(stored_state_dict(model), tmp_path / "b", n_shards=2, config=model.config)
    rc, report = _run(tmp_path, "--hf", str(model_dir), "--hf-b", str(other))
    assert rc == 0, capsys.readouterr().out
    assert report["match"] and report["max_abs"] == 0.0 and report["top1_agreement"] == 1.0
    assert report["mean_cosine"] == pytest.approx(1.0, abs=1e-12)
    assert [p["name"] for p in report["prompts"]] == [p.name for p in BUILTIN_PROMPTS]
    assert {"python", "go", "rust"} == {p.language for p in BUILTIN_PROMPTS}
    assert capsys.readouterr().out.splitlines()[-1] == "MATCH"  # the verdict line, not "MISMATCH"


def test_one_perturbed_weight_fails_with_max_abs_and_top1(model, model_dir, tmp_path, capsys):
    state = stored_state_dict(model)
    state["transformer.h.1.mlp.c_proj.weight"] = state["transformer.h.1.mlp.c_proj.weight"] * 4.0
    other = save_bin(state, tmp_path / "b", config=model.config)
    rc, report = _run(tmp_path, "--hf", str(model_dir), "--hf-b", str(other))
    out = capsys.readouterr().out
    assert rc == 1 and not report["match"]
    # Independent expectation: run both models directly on the same token ids.
    perturbed = tiny_model(seed=7)
    perturbed.load_state_dict(state, strict=False)
    encode = load_token_encoder(TOKENIZER)
    expected_abs, agree, total = 0.0, 0, 0
    with torch.no_grad():
        for prompt in BUILTIN_PROMPTS:
            ids = torch.tensor([encode(prompt.text)])
            a, b = model(input_ids=ids).logits[0], perturbed(input_ids=ids).logits[0]
            expected_abs = max(expected_abs, (a.double() - b.double()).abs().max().item())
            agree += int((a.argmax(-1) == b.argmax(-1)).sum())
            total += ids.shape[1]
    assert report["max_abs"] == pytest.approx(expected_abs, rel=1e-6)
    assert report["top1_agreement"] == pytest.approx(agree / total)
    assert any(f.startswith("max abs logit difference") for f in report["failures"])
    assert "FAIL: max abs logit difference" in out and "top-1" in out and "MISMATCH" in out


def test_thresholds_are_flags(model, model_dir, tmp_path):
    state = stored_state_dict(model)
    state["transformer.ln_f.bias"] = state["transformer.ln_f.bias"] + 1e-4  # logits move a little, uniformly-ish
    other = save_bin(state, tmp_path / "b", config=model.config)
    rc, report = _run(tmp_path, "--hf", str(model_dir), "--hf-b", str(other), "--max-abs", "0")
    assert rc == 1 and report["max_abs"] > 0
    loose = ["--max-abs", str(report["max_abs"] * 2), "--min-cosine", "0.9", "--min-top1", "0"]
    rc, report = _run(tmp_path, "--hf", str(model_dir), "--hf-b", str(other), *loose)
    assert rc == 0 and report["match"]


def test_compare_logits_numbers_on_hand_made_logits():
    prompts = encode_prompts([BUILTIN_PROMPTS[0]], lambda text: [1, 2, 3], vocab_size=10, max_tokens=2)
    assert prompts[0].ids == (1, 2) and prompts[0].truncated_from == 3
    a = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    b = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 2.0]])
    report = compare_logits(prompts, [a], [b], LogitThresholds(max_abs=1.0, min_cosine=0.9, min_top1=0.9))
    assert report.max_abs == 2.0 and report.top1_agreement == 0.5 and report.mean_cosine == pytest.approx(0.5)
    assert len(report.failures) == 3 and "cut from 3 to 2 tokens" in report.notes[0]
    mismatched_vocab = compare_logits(prompts, [a], [b[:, :2]])
    assert "vocab sizes differ" in mismatched_vocab.failures[0]


def test_report_with_nan_logits_is_written_as_strict_json(tmp_path):
    prompts = encode_prompts([BUILTIN_PROMPTS[0]], lambda text: [1, 2], vocab_size=10, max_tokens=8)
    a = torch.tensor([[1.0, float("nan"), 0.0], [0.0, 2.0, 0.0]])
    report = compare_logits(prompts, [a], [torch.zeros(2, 3)])
    write_json(tmp_path / "r.json", report.as_dict())

    def refuse(constant):  # Python's json would otherwise accept the non-standard NaN/Infinity tokens
        raise ValueError(f"non-standard JSON constant {constant}")

    data = json.loads((tmp_path / "r.json").read_text(), parse_constant=refuse)
    assert data["match"] is False and data["max_abs"] == "inf"
    assert data["prompts"][0]["max_abs"] == "inf" and data["prompts"][0]["mean_cosine"] == "nan"


def test_prompts_file_and_its_errors(model_dir, tmp_path, capsys):
    good = tmp_path / "prompts.jsonl"
    good.write_text('{"prompt": "def add(a, b):\\n", "name": "add"}\n\n{"prompt": "fn main() {"}\n')
    expected = [("add", "def add(a, b):\n"), ("prompts_3", "fn main() {")]
    assert [(p.name, p.text) for p in load_prompts_file(good)] == expected
    rc, report = _run(tmp_path, "--hf", str(model_dir), "--hf-b", str(model_dir), "--prompts", str(good),
                      "--no-builtin-prompts")
    assert rc == 0 and [p["name"] for p in report["prompts"]] == ["add", "prompts_3"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x"}\n{"text": "y"}\n')
    with pytest.raises(PromptFileError, match=r'bad.jsonl:2: field "prompt" must be a non-empty string'):
        load_prompts_file(bad)
    assert main(["logits", "--hf", str(model_dir), "--hf-b", str(model_dir), "--prompts", str(bad)]) == 2
    assert "bad.jsonl:2" in capsys.readouterr().err
    bad.write_text('{"prompt": "x"}\n\n{"prompt": "def f():", "name": "a", "prompt": "fn g() {"}\n')
    with pytest.raises(PromptFileError, match=r"bad.jsonl:3: key 'prompt' appears twice"):
        load_prompts_file(bad)
    bad.write_text('{"prompt": "x"}\n{"prompt": \n')
    with pytest.raises(PromptFileError, match=r"bad.jsonl:2: not valid JSON"):
        load_prompts_file(bad)


def test_tokenizer_that_does_not_fit_the_model_is_an_input_error(tmp_path, capsys):
    with pytest.raises(ValueError, match="token id .* >= model vocab_size 100"):  # fixture ids reach 8191
        encode_prompts(BUILTIN_PROMPTS, load_token_encoder(TOKENIZER), vocab_size=100, max_tokens=256)
    assert main(["logits", "--hf", str(tmp_path / "missing"), "--hf-b", str(tmp_path)]) == 2


@pytest.mark.parametrize("out_dtype", ["float32", "bfloat16"])
def test_megatron_side_as_convert_large_calls_it(model, model_dir, tmp_path, capsys, out_dtype):
    from conversion import hf_to_megatron, megatron_to_hf

    megatron = tmp_path / "megatron"
    hf_to_megatron.convert(model_dir, megatron, tp=2, pp=1, tokenizer=TOKENIZER)
    out = megatron_to_hf.convert(megatron, tmp_path / "hf", tokenizer=TOKENIZER, dtype=getattr(torch, out_dtype),
                                 progress=False)
    # Exactly the call in conversion/convert_large.sh: the tokenizer comes from the converted folder.
    assert main(["logits", "--megatron", str(megatron), "--hf", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[-1] == "MATCH" and "megatron:" in printed
    assert ("rounded to torch.bfloat16" in printed) == (out_dtype == "bfloat16")

    state = stored_state_dict(model)
    state["transformer.h.0.attn.c_attn.weight"] = state["transformer.h.0.attn.c_attn.weight"].flip(0)
    wrong = save_bin(state, tmp_path / "wrong", config=model.config)
    rc, report = _run(tmp_path, "--megatron", str(megatron), "--hf", str(wrong))
    assert rc == 1 and report["max_abs"] > 1e-2 and report["label_b"] == f"megatron:{megatron}"


def test_hf_folder_without_tokenizer_is_an_input_error(model_dir, capsys):
    assert main(["logits", "--hf", str(model_dir), "--hf-b", str(model_dir)]) == 2
    assert "pass --tokenizer" in capsys.readouterr().err


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("damage", ["truncated_safetensors", "hostile_bin", "foreign_class_bin"])
def test_a_damaged_or_hostile_folder_gets_the_refusal_verify_shards_gives(model, model_dir, tmp_path, capsys, damage):
    # Issue 7 item 11: logits gave a transformers traceback, exit 1, and advised weights_only=False.
    import shutil

    bad = tmp_path / "bad"
    marker = tmp_path / "pwned"
    if damage == "truncated_safetensors":
        shutil.copytree(model_dir, bad)
        weights = bad / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:-1000])
    else:
        bad.mkdir()
        shutil.copyfile(model_dir / "config.json", bad / "config.json")
        state = dict(stored_state_dict(model))
        state["transformer.wte.weight"] = _Payload(marker) if damage == "hostile_bin" else torch.nn.Linear(2, 2)
        torch.save(state, bad / "pytorch_model.bin")
    assert main(["shards", str(model_dir), str(bad)]) == 2
    shards_err = capsys.readouterr().err
    rc, _ = _run(tmp_path, "--hf", str(bad), "--hf-b", str(model_dir))
    err = capsys.readouterr().err
    assert rc == 2 and err == shards_err and err.count("\n") == 1, err
    assert str(bad) in err and "Traceback" not in err
    for unsafe in ("weights_only=False", "add_safe_globals", "safe_globals(["):
        assert unsafe not in err
    assert not marker.exists()
