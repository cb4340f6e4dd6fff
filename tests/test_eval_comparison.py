"""The base-vs-tuned report: paired statistics against hand-computed values, and `python -m evaluation report`."""
import json
from pathlib import Path

import pytest

from evaluation import commands
from evaluation.paired_stats import (bootstrap_interval, failure_counts, failure_reason, flipped, paired_difference,
                                     problem_rates)
from evaluation.published_scores import published_rows

PROBLEMS = Path(__file__).parent / "fixtures" / "eval_problems"


def entry(task, passed, result="passed", stopped=None):
    return {"task_id": task, "passed": passed, "result": result if passed else result, "stopped": stopped}


def test_rates_difference_and_flips_by_hand():
    base = problem_rates([entry("a", True), entry("a", False, "failed: x"), entry("b", False, "failed: x"),
                          entry("b", False, "failed: x"), entry("c", True), entry("c", True)])
    tuned = problem_rates([entry("a", True), entry("a", True), entry("b", True), entry("b", False, "failed: x"),
                           entry("c", False, "failed: x"), entry("c", False, "failed: x")])
    assert base == {"a": 0.5, "b": 0.0, "c": 1.0} and tuned == {"a": 1.0, "b": 0.5, "c": 0.0}
    diff = paired_difference(base, tuned)
    assert diff["problems"] == 3 and diff["difference"] == pytest.approx((0.5 + 0.5 - 1.0) / 3)
    assert diff["low"] <= diff["difference"] <= diff["high"] and diff["low"] >= -1.0 and diff["high"] <= 0.5
    assert flipped(base, tuned) == (["b"], ["c"])
    same = paired_difference({"a": 0.2, "b": 0.4}, {"a": 0.7, "b": 0.9})  # every problem moved by +0.5
    assert same["low"] == pytest.approx(0.5) and same["high"] == pytest.approx(0.5)
    assert bootstrap_interval([1.0, 1.0, 1.0]) == (1.0, 1.0)


@pytest.mark.parametrize("result, stopped, reason", [
    ("failed: SyntaxError: invalid syntax", None, "syntax or compile error"),
    ("failed: compile error (E0308)", None, "syntax or compile error"),
    ("failed: AssertionError", None, "wrong answer"),
    ("failed: test failed", None, "wrong answer"),
    ("failed: ZeroDivisionError: division by zero", None, "runtime error"),
    ("failed: panicked", None, "runtime error"),
    ("timed out", None, "timeout"),
    ("failed: SyntaxError: unexpected EOF", "length", "stopped by the length budget"),
])
def test_failure_reasons(result, stopped, reason):
    assert failure_reason(entry("a", False, result, stopped)) == reason
    assert failure_counts([entry("a", False, result, stopped), entry("a", True)])[reason] == 1


def score(tmp_path, name, rows):
    samples = tmp_path / f"{name}.jsonl"
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / f"{name}.json"
    assert commands.main(["humaneval", "--problems", str(PROBLEMS / "python.jsonl"), "--samples", str(samples),
                          "--out", str(out), "--k", "1", "--no-progress"]) == 0
    return out


def test_report_command_compares_two_runs(tmp_path):
    rows = [json.loads(line) for line in (PROBLEMS / "python_samples.jsonl").read_text().splitlines()]
    right = {r["task_id"]: r for r in rows if r["expected"]}
    wrong = {r["task_id"]: r for r in rows if not r["expected"]}
    # base solves Python/0 and /3, the tuned model Python/0, /1 and /2: /1 and /2 flip up, /3 down
    base = score(tmp_path, "base", [right["Python/0"], wrong["Python/1"], wrong["Python/2"], right["Python/3"]])
    tuned = score(tmp_path, "tuned", [right["Python/0"], right["Python/1"], right["Python/2"], wrong["Python/3"]])
    out = tmp_path / "report.md"
    assert commands.main(["report", "--base", str(base), "--tuned", str(tuned), "--out", str(out)]) == 0
    text = out.read_text()
    assert "now solved Python/1, Python/2; now failing Python/3." in text
    assert "| 4 | @1 50.0/75.0 | 50.0 [" in text and "| +25.0 [" in text
    assert "| HumanEval (python.jsonl) python | base | 4 | 0 | 2 | 0 | 0 | 0 |" in text
    plot = tmp_path / "report_pass_at_1.png"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "![pass@1" in text
    assert commands.main(["report", "--base", str(base), "--tuned", str(tuned), "--out", str(out)]) == 0  # its own
    foreign = tmp_path / "notes.md"
    foreign.write_text("# my notes\n")
    assert commands.main(["report", "--base", str(base), "--tuned", str(tuned), "--out", str(foreign)]) == 2
    assert foreign.read_text() == "# my notes\n"



def test_a_subset_run_says_so_in_the_plot_too(tmp_path):
    """A --limit / partial run is labelled SUBSET in its table row and under its bar in the pass@1 plot."""
    from PIL import Image

    rows = [json.loads(line) for line in (PROBLEMS / "python_samples.jsonl").read_text().splitlines()]
    right = [r for r in rows if r["expected"]][:2]  # two problems of the file's four
    base, tuned = score(tmp_path, "base", right), score(tmp_path, "tuned", right)
    out = tmp_path / "report.md"
    assert commands.main(["report", "--base", str(base), "--tuned", str(tuned), "--out", str(out)]) == 0
    assert "| HumanEval (python.jsonl) python | 2 of 4 (SUBSET) |" in out.read_text()
    with Image.open(tmp_path / "report_pass_at_1.png") as png:
        assert png.text["Description"] == "HumanEval (python.jsonl) python SUBSET"

def test_published_rows_only_for_known_models_and_marked():
    assert [round(p.pass_at_1, 4) for p in published_rows("/models/StarCoderBase-1B/")] == [0.1517]
    assert published_rows("out/demo/hf") == []
    assert {p.language for p in published_rows("bigcode/octocoder", "humaneval")} == {"python", "go", "rust"}


def test_published_humanevalfix_rows_for_octocoder_and_starcoder():
    """OctoPack's Table 2 (HumanEvalFix pass@1 %), read from the paper's LaTeX in bigcode-project/octopack and the
    authors' result files (bigcode/evaluation: OctoCoder Python 0.3037, Go 0.3015)."""
    fix = {(p.model, p.language): round(100 * p.pass_at_1, 1) for p in published_rows("bigcode/octocoder", "humanevalfix")
           + published_rows("bigcode/starcoder", "humanevalfix")}
    assert fix == {("octocoder", "python"): 30.4, ("octocoder", "go"): 30.2, ("octocoder", "rust"): 16.5,
                   ("starcoder", "python"): 8.7, ("starcoder", "go"): 20.1, ("starcoder", "rust"): 6.7}
    for p in published_rows("octocoder", "humanevalfix") + published_rows("starcoder", "humanevalfix"):
        assert "arXiv:2308.07124" in p.source and "Table 2" in p.source and "--prompt" in p.note
    assert published_rows("starcoderbase", "humanevalfix") == []  # not in Table 2: nothing invented


def test_a_known_model_gets_its_published_row_marked_published(tmp_path):
    rows = [json.loads(line) for line in (PROBLEMS / "python_samples.jsonl").read_text().splitlines()]
    runs = {}
    for name in ("base", "tuned"):
        folder = tmp_path / name
        folder.mkdir()
        results = json.loads(score(tmp_path, name, rows[:4]).read_text())
        (folder / "results.json").write_text(json.dumps(results))
        (folder / "settings.json").write_text(json.dumps({**results["settings"], "model": f"hub/starcoderbase-1b-{name}"
                                                          if name == "tuned" else "hub/starcoderbase-1b"}))
        runs[name] = folder
    out = tmp_path / "r.md"
    assert commands.main(["report", "--base", str(tmp_path / "base"), "--tuned", str(tmp_path / "tuned"),
                          "--out", str(out)]) == 0
    text = out.read_text()
    assert "PUBLISHED, not measured here" in text and "| starcoderbase-1b | humaneval | python | 15.2 |" in text
    assert text.count("| starcoderbase-1b |") == 1  # the fine-tune's own name is no known model
