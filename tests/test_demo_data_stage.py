"""The demo's data steps, run in-process on a small slice of the stdlib into tmp_path."""
import importlib.util
import json
import sys
import sysconfig
from pathlib import Path

from tokenizers import Tokenizer

from tests.conftest import REPO_ROOT


def _demo_module():
    spec = importlib.util.spec_from_file_location("demo_script", REPO_ROOT / "scripts" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_data_steps_write_usable_outputs(tmp_path, capsys):
    demo = _demo_module()
    data = tmp_path / "data"
    pairs, tokenizer = data / "pairs.jsonl", data / "tokenizer.json"
    json_pkg = Path(sysconfig.get_paths()["stdlib"]) / "json"
    rc = demo.main([
        "--steps", "pairs,tokenizer,preprocess,splits",
        f"data.inputs=[{pairs}]", f"data.tokenizer={tokenizer}", f"data.output_prefix={data / 'pairs'}",
        "data.valid_fraction=0.2", f"splits.out_dir={data}", "training.train_iters=2", "training.global_batch_size=4",
        f"demo.roots=[{json_pkg}]", "demo.vocab_size=400", "demo.max_records=20",
    ])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "=== [1/" in printed and f"pairs: {pairs}" in printed and f"tokenizer: {tokenizer}" in printed
    assert (data / "train_data_paths.txt").read_text() == '"train: 1.0 0:1 pairs"\n'
    assert (data / "valid_data_paths.txt").read_text() == '"valid: 1.0 0:1 pairs_valid"\n'
    for name in ("pairs_inputs_document.idx", "pairs_valid_targets_document.bin", "split_plan.json"):
        assert (data / name).exists() and f": {data / name}" in printed
    records = [json.loads(line) for line in pairs.read_text(encoding="utf-8").splitlines()]
    assert 0 < len(records) <= 20
    tok = Tokenizer.from_file(str(tokenizer))
    for record in records:
        ids = tok.encode(record["inputs"], add_special_tokens=False).ids
        assert 15 in ids  # <commit_before> is one id
        assert tok.encode(record["targets"], add_special_tokens=False).ids[-1] == 0  # <|endoftext|>


def test_bad_override_is_a_clear_error(capsys):
    demo = _demo_module()
    assert demo.main(["--steps", "pairs", "demo.max_recordz=3"]) == 2
    assert "unknown key 'max_recordz'" in capsys.readouterr().err


def test_whole_demo_pipeline_into_tmp_path(tmp_path, capsys):
    """Every demo step, tiny: data -> base model -> fine-tune (validation loss must fall) -> HF, verified by logits."""
    demo = _demo_module()
    data = tmp_path / "data"
    email_pkg = Path(sysconfig.get_paths()["stdlib"]) / "email"
    rc = demo.main([
        f"data.inputs=[{data / 'pairs.jsonl'}]", f"data.tokenizer={data / 'tokenizer.json'}",
        f"data.output_prefix={data / 'pairs'}", "data.valid_fraction=0.2", f"splits.out_dir={data}",
        f"training.load={tmp_path / 'base'}", f"training.save={tmp_path / 'ckpt'}",
        f"training.train_split_file={data / 'train_data_paths.txt'}",
        f"training.valid_split_file={data / 'valid_data_paths.txt'}",
        "training.train_iters=16", "training.eval_interval=8", "training.save_interval=8", "training.eval_iters=1",
        "training.lr_warmup_samples=8", f"demo.roots=[{email_pkg}]", "demo.vocab_size=1000", "demo.max_records=150", "demo.max_record_chars=500",
    ])
    printed = capsys.readouterr().out
    assert rc == 0, printed[-3000:]
    assert "validation loss went down" in printed
    assert "MATCH" in printed  # the logit check between the Megatron checkpoint and the HF export
    assert (tmp_path / "ckpt" / "latest_checkpointed_iteration.txt").read_text() == "16"
    assert (tmp_path / "hf" / "model.safetensors.index.json").exists() or (tmp_path / "hf" / "model.safetensors").exists()
    assert (tmp_path / "base" / "latest_checkpointed_iteration.txt").read_text() == "release"
