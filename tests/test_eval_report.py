"""The base-vs-fine-tuned report: the commands it runs and the markdown it renders from their outputs."""
import json
from pathlib import Path

from evaluation import commands
from evaluation.report import ComparisonPlan, ReportContext, comparison_commands, render_report


def test_comparison_commands_parse_and_name_their_outputs(tmp_path):
    plan = ComparisonPlan(problems=3, samples=4, ks=(1, 4), workers=2)
    argvs = comparison_commands(Path("b"), Path("t"), "data/pairs_valid", tmp_path, plan)
    parser = commands.build_parser()
    parsed = [parser.parse_args(argv) for argv in argvs]  # every command is valid for python -m evaluation
    assert [a.command for a in parsed] == ["loss", "humaneval", "humaneval", "infill", "commitfix", "humaneval",
                                           "infill", "commitfix", "compare"]
    generate = [a for a in parsed if a.command == "humaneval" and a.model is not None]
    assert [(a.limit, a.n, a.k) for a in generate] == [(3, 4, "1,4")] * 2
    assert parsed[1].canonical and parsed[1].out == tmp_path / "humaneval_canonical.json"


def write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def test_report_renders_every_section_from_the_files(tmp_path):
    write(tmp_path / "heldout_loss.json", {
        "base": {"loss": 9.0, "tokens": 100, "pairs": 10, "skipped_too_long": 1},
        "fine-tuned": {"loss": 7.5, "tokens": 100, "pairs": 10, "skipped_too_long": 1}})
    gen = {"n": 5, "temperature": 0.2, "top_p": 0.95, "max_new_tokens": 48}
    for label, score in (("base", 0.0), ("fine-tuned", 0.1)):
        write(tmp_path / f"humaneval_{label}" / "results.json", {
            "pass@1": score, "pass@5": score * 2, "problems": 10, "samples": 50, "settings": {"generation": gen}})
        write(tmp_path / f"infill_{label}.json", {"pass@1": 0.25, "exact_match": 0.125, "tasks": 8, "problems": 2})
        write(tmp_path / f"commitfix_{label}.json", {"pass@1": 0.0, "tasks": 7, "problems": 3})
    write(tmp_path / "humaneval_canonical.json", {"pass@1": 1.0, "problems": 164, "samples": 164})
    (tmp_path / "side_by_side.md").write_text("| prompt | language | base | fine-tuned |\n|---|---|---|---|\n")
    text = render_report(tmp_path, ReportContext("T", ["python -m x --y"], loss_curve="checkpoints/loss_curve.png"))
    assert "```bash\npython -m x --y\n```" in text
    assert "| fine-tuned | 7.5000 | 100 | 10 | 1 |" in text and "held-out loss went down" in text
    assert "| model | pass@1 | pass@5 | problems | samples |" in text
    assert "| fine-tuned | 0.1000 | 0.2000 | 10 | 50 |" in text and "| canonical solutions | 1.0000 | - | 164 | 164 |" in text
    assert "| base | 0.2500 | 0.1250 | 8 | 2 |" in text and "| base | 0.0000 | 7 | 3 |" in text
    assert "![training and validation loss](checkpoints/loss_curve.png)" in text
    assert text.rstrip().endswith("|---|---|---|---|")


def test_canonical_flag_scores_reference_solutions(tmp_path):
    out = tmp_path / "canonical.json"
    assert commands.main(["humaneval", "--canonical", "--limit", "3", "--out", str(out), "--k", "1",
                          "--no-progress"]) == 0
    results = json.loads(out.read_text())
    assert results["pass@1"] == 1.0 and results["problems"] == 3
    assert commands.main(["humaneval", "--canonical", "--samples", str(out), "--out", str(out)]) == 2
