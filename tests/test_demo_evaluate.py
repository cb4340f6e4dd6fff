"""The demo's evaluate step on tiny in-process models: it runs the comparison and writes the report."""
import functools
import importlib.util
import shutil
import sys

from evaluation import report as report_module
from tests.conftest import FORK_FIXTURES, REPO_ROOT
from tests.evaluation_fixtures import TOKENIZER, tiny_hf_folder
from tests.local_engine_fixtures import tiny_release


def _demo_module():
    spec = importlib.util.spec_from_file_location("demo_script_eval", REPO_ROOT / "scripts" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_evaluate_step_writes_the_report(tmp_path, monkeypatch, capsys):
    base = tiny_release(tmp_path)
    tiny_hf_folder(tmp_path / "hf")  # what the to_hf step leaves next to the checkpoints
    data = tmp_path / "data"
    data.mkdir()
    for role in ("inputs", "targets"):
        for ext in ("bin", "idx"):
            shutil.copyfile(FORK_FIXTURES / f"sample_{role}_document.{ext}", data / f"pairs_valid_{role}_document.{ext}")
    monkeypatch.setattr(report_module, "ComparisonPlan",
                        functools.partial(report_module.ComparisonPlan, canonical_problems=3))
    demo = _demo_module()
    assert demo.main(["--steps", "evaluate", f"training.load={base}", f"training.save={tmp_path / 'checkpoints'}",
                      f"data.output_prefix={data / 'pairs'}", f"data.tokenizer={TOKENIZER}", f"splits.out_dir={data}",
                      "demo.eval_problems=1", "demo.eval_samples=2"]) == 0
    printed = capsys.readouterr().out
    assert "$ python -m evaluation humaneval --model" in printed
    text = (tmp_path / "report.md").read_text()
    for title in ("## Commands run", "## Held-out loss", "## HumanEval pass@k", "## Single-line infilling",
                  "## Commit fixes", "## Prompts side by side"):
        assert title in text, title
    assert "| canonical solutions | 1.0000 | - | 3 | 3 |" in text
    assert "python -m conversion.megatron_to_hf --megatron" in text and (tmp_path / "base_hf" / "config.json").exists()
    assert (tmp_path / "eval" / "humaneval_fine-tuned" / "samples.jsonl").exists()
