"""The demo's evaluation: the commands it runs and the markdown it renders from their outputs."""
import json
from pathlib import Path

from evaluation import commands
from evaluation.report import ComparisonPlan, ReportContext, comparison_commands, generated_runs, render_report


def test_comparison_commands_parse_and_name_their_outputs(tmp_path):
    plan = ComparisonPlan(toy_dir=Path("toy"), problems=3, samples=4, workers=2)
    argvs = comparison_commands(Path("b"), Path("t"), "data/pairs_valid", tmp_path, plan)
    parser = commands.build_parser()
    parsed = [parser.parse_args(argv) for argv in argvs]  # every command is valid for python -m evaluation
    names = [a.command for a in parsed]
    assert names[:2] == ["loss", "humaneval"] and names[-1] == "compare"
    checks = [a for a in parsed if a.command == "humaneval" and a.model is None]
    assert {(a.language, a.canonical, a.samples is not None) for a in checks} == {
        ("python", True, False), *((lang, True, False) for lang in ("python", "go", "rust")),
        *((lang, False, True) for lang in ("python", "go", "rust"))}
    generate = [a for a in parsed if a.command == "humaneval" and a.model is not None]
    assert sorted((a.out.parent.name, a.out.name) for a in generate) == sorted(
        (label, run) for label in ("base", "fine-tuned") for run in ("toy-python", "toy-go", "humaneval-python"))
    real = [a for a in generate if a.out.name == "humaneval-python"]
    assert [(a.limit, a.n, a.k, a.max_new_tokens) for a in real] == [(3, 4, "1,4", None)] * 2  # the harness budget
    assert {label: [p.name for p in runs] for label, runs in generated_runs(argvs).items()} == {
        label: ["toy-python", "toy-go", "humaneval-python"] for label in ("base", "fine-tuned")}


def write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def test_report_renders_every_section_from_the_files(tmp_path):
    write(tmp_path / "heldout_loss.json", {
        "base": {"loss": 9.0, "tokens": 100, "pairs": 10, "skipped_too_long": 1},
        "fine-tuned": {"loss": 7.5, "tokens": 100, "pairs": 10, "skipped_too_long": 1}})
    for language in ("python", "go"):
        write(tmp_path / "checks" / f"toy_{language}_canonical.json", {"pass@1": 1.0, "problems": 4, "language": language})
        write(tmp_path / "checks" / f"toy_{language}_wrong.json", {"pass@1": 0.0, "problems": 4, "language": language})
    for label, passed in (("base", [False, False, True]), ("fine-tuned", [True, False, True])):
        entries = [{"task_id": f"Go/toy_{i}", "passed": p, "result": "passed" if p else "failed: test failed"}
                   for i, p in enumerate(passed)]
        write(tmp_path / label / "toy-go" / "results.json", {"pass@1": sum(passed) / 3, "problems": 3,
              "problems_total": 3, "samples": 3, "subset": None, "language": "go", "results": entries})
        write(tmp_path / label / "toy-go" / "settings.json", {"task": "humaneval", "language": "go",
                                                              "problems_source": "out/toy/toy_go.jsonl", "model": label})
        (tmp_path / label / "toy-go" / "samples.jsonl").write_text("".join(
            json.dumps({"task_id": e["task_id"], "completion": f"    return {label}\n}}\n"}) + "\n" for e in entries))
        write(tmp_path / f"infill_{label}.json", {"pass@1": 0.25, "exact_match": 0.125, "tasks": 8, "problems": 2,
                                                  "problems_total": 164, "subset": "subset: 2 of 164 problems"})
        write(tmp_path / f"mutantfix_{label}.json", {"pass@1": 0.0, "tasks": 7, "problems": 3})
    (tmp_path / "side_by_side.md").write_text("| prompt | language | base | fine-tuned |\n|---|---|---|---|\n")
    plot = tmp_path / "report_pass_at_1.png"
    text = render_report(tmp_path, ReportContext("T", ["python -m x --y"], loss_curve="checkpoints/loss_curve.png",
                                                 plot=plot))
    assert "```bash\npython -m x --y\n```" in text
    assert "| fine-tuned | 7.5000 | 100 | 10 | 1 |" in text and "held-out loss went down" in text
    assert "| TOY arithmetic | go | 1.0000 | 0.0000 | 4 | all |" in text
    assert "The **TOY** rows are a task family made for this demo" in text
    assert "**TOY arithmetic go**: now solved Go/toy_0; now failing none." in text
    assert "return&nbsp;base" in text and "return&nbsp;fine-tuned" in text  # the flipped problem side by side
    assert plot.read_bytes()[:4] == b"\x89PNG" and "![pass@1" in text
    assert "| base | 0.2500 | 0.1250 | 8 | 2 of 164 (SUBSET) |" in text and "NOT HumanEvalFix" in text
    assert "| base | 0.0000 | 7 | 3 |" in text  # a file without the subset fields (the whole benchmark)
    assert "![training and validation loss](checkpoints/loss_curve.png)" in text
    assert text.rstrip().endswith("|---|---|---|---|")


def test_canonical_flag_scores_reference_solutions(tmp_path):
    out = tmp_path / "canonical.json"
    assert commands.main(["humaneval", "--canonical", "--limit", "3", "--out", str(out), "--k", "1",
                          "--no-progress"]) == 0
    results = json.loads(out.read_text())
    assert results["pass@1"] == 1.0 and results["problems"] == 3 and results["subset"].startswith("subset: 3 of 164")
    assert commands.main(["humaneval", "--canonical", "--samples", str(out), "--out", str(out)]) == 2
