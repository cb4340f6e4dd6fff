"""`python -m conversion.verify shards A B`: layouts, every kind of difference, tolerances, tied heads, memory."""
from __future__ import annotations

import json
import weakref

import numpy as np
import pytest
import torch

from conversion import hf_checkpoint_reader
from conversion.shard_compare import compare_checkpoints
from conversion.verify import main
from tests.tiny_hf_checkpoints import LAYOUTS, save_bin, save_layout, save_safetensors, stored_state_dict, tiny_model

PERTURBED = "transformer.h.1.mlp.c_fc.weight"


@pytest.fixture(scope="module")
def model():
    return tiny_model(seed=0)


@pytest.fixture(scope="module")
def state(model):
    return stored_state_dict(model)


@pytest.fixture(scope="module")
def reference(model, state, tmp_path_factory):
    return save_layout(state, tmp_path_factory.mktemp("ref"), "safetensors", model.config)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float64).numpy()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_same_weights_in_any_layout_match(layout, model, state, reference, tmp_path, capsys):
    other = save_layout(state, tmp_path / layout, layout, model.config)
    assert main(["shards", str(other), str(reference)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1].startswith("MATCH;") and f"{len(state)} byte-identical" in out  # not "MISMATCH"


def test_save_pretrained_shards_match_bin_shards(model, state, tmp_path):
    model.save_pretrained(tmp_path / "hf", max_shard_size="200KB")
    assert len(list((tmp_path / "hf").glob("model-*.safetensors"))) > 1
    save_bin(state, tmp_path / "bin", n_shards=4, config=model.config)
    assert main(["shards", str(tmp_path / "hf"), str(tmp_path / "bin")]) == 0


def _with(state, **changes):
    changed = dict(state)
    for key, value in changes.items():
        if value is None:
            changed.pop(key.replace("__", "."))
        else:
            changed[key.replace("__", ".")] = value
    return changed


def test_perturbed_tensor_reports_exact_numbers(model, state, reference, tmp_path, capsys):
    original = state[PERTURBED]
    perturbed = original.clone()
    perturbed[3, 5] += 0.25
    perturbed[7, 1] *= 3.0
    folder = save_layout({**state, PERTURBED: perturbed}, tmp_path / "a", "bin_sharded", model.config)
    assert main(["shards", str(folder), str(reference), "--json", str(tmp_path / "r.json")]) == 1
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["match"] is False and [d["key"] for d in report["diffs"]] == [PERTURBED]
    diff = report["diffs"][0]
    a, b = _np(perturbed), _np(original)
    expected_abs = np.abs(a - b)
    assert diff["problems"] == ["values"]
    assert diff["max_abs"] == pytest.approx(expected_abs.max(), rel=1e-12)
    assert diff["max_rel"] == pytest.approx((expected_abs / np.abs(b)).max(), rel=1e-12)
    assert diff["n_mismatched"] == 2 and diff["numel"] == original.numel()
    out = capsys.readouterr().out
    assert PERTURBED in out and f"{expected_abs.max():.3e}" in out and "2/" in out and "MISMATCH" in out


def test_atol_and_rtol(model, state, reference, tmp_path):
    original = state[PERTURBED]
    shifted = original + 1e-3  # every element moves by (float32-rounded) ~1e-3
    folder = save_layout({**state, PERTURBED: shifted}, tmp_path / "a", "safetensors", model.config)
    max_abs = np.abs(_np(shifted) - _np(original)).max()
    max_rel = (np.abs(_np(shifted) - _np(original)) / np.abs(_np(original))).max()
    assert main(["shards", str(folder), str(reference)]) == 1
    assert main(["shards", str(folder), str(reference), "--atol", f"{max_abs * 1.001}"]) == 0
    assert main(["shards", str(folder), str(reference), "--atol", f"{max_abs * 0.5}"]) == 1
    assert main(["shards", str(folder), str(reference), "--rtol", f"{max_rel * 1.001}"]) == 0
    report = compare_checkpoints(folder, reference, atol=max_abs * 0.5)
    expected_bad = int((np.abs(_np(shifted) - _np(original)) > max_abs * 0.5).sum())
    assert report.diffs[0].n_mismatched == expected_bad
    assert report.n_within_tolerance == 0 and report.n_byte_identical == len(state) - 1


def test_missing_extra_dtype_and_shape_are_each_reported(model, state, reference, tmp_path):
    half = state["transformer.h.0.attn.c_attn.weight"].to(torch.float16)
    shorter = state["transformer.wpe.weight"][:100].clone()
    changed = _with(state, transformer__ln_f__bias=None, transformer__h__0__attn__c_attn__weight=half,
                    transformer__wpe__weight=shorter)
    changed["transformer.extra.weight"] = torch.ones(3, 2)
    folder = save_layout(changed, tmp_path / "a", "bin", model.config)
    report = compare_checkpoints(folder, reference)
    diffs = {d.key: d for d in report.diffs}
    assert set(diffs) == {"transformer.ln_f.bias", "transformer.extra.weight", "transformer.h.0.attn.c_attn.weight",
                          "transformer.wpe.weight"}
    assert diffs["transformer.ln_f.bias"].problems == ("missing in A",)
    assert diffs["transformer.ln_f.bias"].shape_b == (64,)
    assert diffs["transformer.extra.weight"].problems == ("missing in B",)
    assert diffs["transformer.extra.weight"].shape_a == (3, 2)
    dtype = diffs["transformer.h.0.attn.c_attn.weight"]
    assert dtype.dtype_a == "float16" and dtype.dtype_b == "float32" and dtype.problems[0] == "dtype"
    rounding = np.abs(_np(half) - _np(state["transformer.h.0.attn.c_attn.weight"]))
    assert dtype.max_abs == pytest.approx(rounding.max(), rel=1e-12)
    assert dtype.n_mismatched == int((rounding > 0).sum())
    shape = diffs["transformer.wpe.weight"]
    assert shape.problems == ("shape",) and shape.shape_a == (100, 64) and shape.shape_b == (256, 64)
    assert shape.max_abs is None
    assert report.n_keys_a == len(state) and report.n_keys_b == len(state)


def test_dtype_change_within_tolerance_is_still_a_mismatch(model, state, reference, tmp_path):
    exact_in_double = {**state, "transformer.ln_f.weight": state["transformer.ln_f.weight"].double()}
    folder = save_layout(exact_in_double, tmp_path / "a", "safetensors", model.config)
    report = compare_checkpoints(folder, reference)
    assert [(d.key, d.problems, d.max_abs) for d in report.diffs] == [("transformer.ln_f.weight", ("dtype",), 0.0)]


def test_across_dtypes_compares_a_bf16_export_with_the_fp32_one(model, state, reference, tmp_path, capsys):
    bf16 = {k: v.to(torch.bfloat16) for k, v in state.items()}
    export = save_layout(bf16, tmp_path / "bf16", "safetensors", model.config)
    assert main(["shards", str(export), str(reference)]) == 1  # exact mode: every float tensor's dtype differs
    capsys.readouterr()
    assert main(["shards", str(export), str(reference), "--across-dtypes"]) == 0  # fp32 rounded to bf16: exact
    out = capsys.readouterr().out
    assert out.splitlines()[-1].startswith("MATCH;") and f"{len(state)} equal within tolerance" in out
    # one wrong value is still found, and a tolerance admits it
    wrong = dict(bf16)
    wrong[PERTURBED] = bf16[PERTURBED].clone()
    wrong[PERTURBED].view(-1)[5] = wrong[PERTURBED].view(-1)[5] * 1.5 + 0.01
    export = save_layout(wrong, tmp_path / "wrong", "safetensors", model.config)
    report = compare_checkpoints(export, reference, across_dtypes=True)
    assert [(d.key, d.problems, d.n_mismatched) for d in report.diffs] == [(PERTURBED, ("values",), 1)]
    assert compare_checkpoints(export, reference, atol=10.0, across_dtypes=True).match


def test_tied_head_absent_on_one_side_is_a_note_not_a_mismatch(model, state, reference, tmp_path, capsys):
    with_head = {**state, "lm_head.weight": state["transformer.wte.weight"].clone()}
    folder = save_layout(with_head, tmp_path / "a", "bin", model.config)
    assert main(["shards", str(folder), str(reference)]) == 0
    assert "note: lm_head.weight is absent in B" in capsys.readouterr().out
    assert main(["shards", str(reference), str(folder)]) == 0
    assert "note: lm_head.weight is absent in A" in capsys.readouterr().out

    wrong_head = {**state, "lm_head.weight": state["transformer.wte.weight"] * 2}
    folder = save_layout(wrong_head, tmp_path / "b", "bin", model.config)
    report = compare_checkpoints(folder, reference)
    assert [(d.key, d.problems) for d in report.diffs] == [("lm_head.weight", ("values",))]
    assert report.diffs[0].max_abs == pytest.approx(np.abs(_np(state["transformer.wte.weight"])).max(), rel=1e-12)


def test_untied_config_reports_missing_head(model, state, tmp_path):
    untied = model.config.__class__.from_dict({**model.config.to_dict(), "tie_word_embeddings": False})
    reference = save_layout(state, tmp_path / "ref", "safetensors", untied)
    with_head = {**state, "lm_head.weight": state["transformer.wte.weight"].clone()}
    folder = save_layout(with_head, tmp_path / "a", "safetensors", untied)
    report = compare_checkpoints(folder, reference)
    assert [(d.key, d.problems) for d in report.diffs] == [("lm_head.weight", ("missing in B",))]


def test_nan_and_signed_zero(tmp_path):
    b = torch.tensor([0.0, float("nan"), 1.0, 2.0])
    a = torch.tensor([-0.0, float("nan"), 1.0, float("nan")])
    save_safetensors({"x": b}, tmp_path / "b")
    save_safetensors({"x": a}, tmp_path / "a")
    report = compare_checkpoints(tmp_path / "a", tmp_path / "b")
    assert report.diffs[0].n_mismatched == 1 and report.diffs[0].max_abs == float("inf")
    save_safetensors({"x": a[:3].clone()}, tmp_path / "a3")
    save_safetensors({"x": b[:3].clone()}, tmp_path / "b3")
    assert compare_checkpoints(tmp_path / "a3", tmp_path / "b3").match  # NaN == NaN, -0.0 == 0.0


def test_usage_and_io_errors_exit_2(reference, tmp_path, capsys):
    assert main(["shards", str(reference), str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["shards", str(reference), str(tmp_path / "empty")]) == 2
    assert main(["shards", str(reference)]) == 2
    assert main(["shards", str(reference), str(reference), "--atol", "-1"]) == 2


def test_memory_stays_bounded_one_tensor_pair_at_a_time(tmp_path, monkeypatch):
    """Instrument the reader: every tensor or buffer it hands out must be dead before the next key is read."""
    torch.manual_seed(1)
    many = {f"layer.{i}.weight": torch.randn(32, 16) for i in range(400)}
    save_bin(many, tmp_path / "a", n_shards=7)
    save_safetensors(many, tmp_path / "b", sharded=True)
    alive: list[weakref.ref] = []
    peak = {"alive": 0, "bin_shards": 0}
    reader = hf_checkpoint_reader.HFCheckpointReader
    original = {name: getattr(reader, name) for name in ("raw_bytes", "flat_tensor", "_bin_shard")}

    def tracked(name):
        def wrapper(self, key):
            result = original[name](self, key)
            if name == "_bin_shard":
                peak["bin_shards"] = max(peak["bin_shards"], len(self._bin_open))
                return result
            alive[:] = [ref for ref in alive if ref() is not None]
            alive.append(weakref.ref(result))
            peak["alive"] = max(peak["alive"], len(alive))
            return result
        return wrapper

    for name in original:
        monkeypatch.setattr(reader, name, tracked(name))
    report = compare_checkpoints(tmp_path / "a", tmp_path / "b")
    assert report.match and report.n_byte_identical == 400
    assert peak["alive"] <= 2  # one tensor from A and one from B, never more
    assert peak["bin_shards"] <= hf_checkpoint_reader.BIN_SHARDS_OPEN


def test_command_lines_exit_codes(model, state, reference, tmp_path):
    """The real entry points, as users type them: the module and the old script name."""
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT

    other = save_layout({**state, PERTURBED: state[PERTURBED] + 1.0}, tmp_path / "a", "bin", model.config)
    module = subprocess.run([sys.executable, "-m", "conversion.verify", "shards", str(other), str(reference)],
                            capture_output=True, text=True, cwd=REPO_ROOT)
    assert module.returncode == 1 and PERTURBED in module.stdout
    script = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "check_shards.py"), str(reference),
                             str(reference), "--atol", "0"], capture_output=True, text=True, cwd=tmp_path)
    assert script.returncode == 0 and script.stdout.splitlines()[-1].startswith("MATCH;")
