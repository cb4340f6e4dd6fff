"""Go and Rust executed as HumanEval-X does, on hand-written problems: assembly, verdicts, reasons, limits, files."""
import gzip
import json
from pathlib import Path

import pytest

from evaluation import commands
from evaluation.compiled_programs import close_function, generation_prompt, humaneval_x_program
from evaluation.problem_files import ProblemFileError, load_problem_set, read_problem_file
from evaluation.toolchains import ToolchainMissing, shared_build

PROBLEMS = Path(__file__).parent / "fixtures" / "eval_problems"


def toolchain(language):
    try:
        return shared_build((language,))
    except ToolchainMissing as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def go_problems():
    return read_problem_file(PROBLEMS / "go.jsonl", "go")


@pytest.fixture(scope="module")
def rust_problems():
    return read_problem_file(PROBLEMS / "rust.jsonl", "rust")


def test_go_program_replaces_the_import_block_and_imports_what_the_completion_uses(go_problems):
    problem = go_problems["Go/1"]  # its prompt imports "strings"
    text = humaneval_x_program("go", problem, problem["canonical_solution"])
    assert text.startswith(problem["test_setup"]) and problem["import"] not in text
    assert 'import (\n"strings"\n)' in text and text.endswith(problem["test"])
    # JoinReversed's prompt imports nothing; the completion's strings.Join brings the import
    joined = humaneval_x_program("go", go_problems["Go/3"], go_problems["Go/3"]["canonical_solution"])
    assert '"strings"' in joined
    # a completion using no package gets no import block at all (Go rejects unused imports)
    plain = humaneval_x_program("go", go_problems["Go/0"], "    return 0\n}\n")
    assert plain == go_problems["Go/0"]["test_setup"] + "\n" + go_problems["Go/0"]["prompt"] + "    return 0\n}\n\n" + \
        go_problems["Go/0"]["test"]


def test_rust_program_is_main_declaration_prompt_completion_test(rust_problems):
    problem = rust_problems["Rust/2"]
    text = humaneval_x_program("rust", problem, "BODY")
    assert text == "\nfn main(){ \n } \n" + problem["declaration"] + problem["prompt"] + "BODY" + problem["test"]
    assert generation_prompt("rust", problem) + "BODY" + problem["test"] == text


def test_harness_cut_closes_the_function():
    assert close_function("    return 1\n}\n\nfunc Other() {\n}", ("\nfunc",)) == "    return 1\n}"
    assert close_function("  if x {\n    y\n  }\n  z\n}\nfn more() {}", ()) == "  if x {\n    y\n  }\n  z\n}"
    assert close_function("    a\n  } } }", ()) == "    a\n  }"
    assert close_function("    unfinished", ()) == "    unfinished"


@pytest.mark.parametrize("language", ["python", "go", "rust"])
def test_right_and_wrong_completions_score_as_written_down(tmp_path, language):
    if language != "python":
        toolchain(language)
    samples = PROBLEMS / f"{language}_samples.jsonl"
    expected = [json.loads(line)["expected"] for line in samples.read_text().splitlines()]
    out = tmp_path / "results.json"
    assert commands.main(["humaneval", "--language", language, "--problems", str(PROBLEMS / f"{language}.jsonl"),
                          "--samples", str(samples), "--out", str(out), "--k", "1", "--no-progress",
                          "--workers", "2"]) == 0
    results = json.loads(out.read_text())
    assert [r["passed"] for r in results["results"]] == expected
    assert results["language"] == language and results["subset"] is None
    assert results["pass@1"] == pytest.approx(sum(expected) / len(expected))


@pytest.mark.parametrize("language", ["go", "rust"])
def test_canonical_solutions_pass_and_each_failure_has_its_kind(tmp_path, language, go_problems, rust_problems):
    toolchain(language)
    problems = go_problems if language == "go" else rust_problems
    first = next(iter(problems))
    body = {"go": ("    return len(xs\n}\n", "    for {\n    }\n}\n", "    var a []int\n    return a[3]\n}\n"),
            "rust": ("    xs.len(\n}\n", "    loop {}\n}\n", "    let v: Vec<i32> = vec![]; v[3]\n}\n")}[language]
    rows = [{"task_id": first, "completion": text} for text in body]
    samples = tmp_path / "s.jsonl"
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "r.json"
    assert commands.main(["humaneval", "--language", language, "--problems", str(PROBLEMS / f"{language}.jsonl"),
                          "--samples", str(samples), "--out", str(out), "--k", "1", "--timeout", "2",
                          "--no-progress"]) == 0
    kinds = [r["result"] for r in json.loads(out.read_text())["results"]]
    assert kinds[0].startswith("failed: compile error") and kinds[1] == "timed out"
    assert kinds[2] == "failed: panicked"
    canonical = tmp_path / "c.json"
    assert commands.main(["humaneval", "--language", language, "--problems", str(PROBLEMS / f"{language}.jsonl"),
                          "--canonical", "--out", str(canonical), "--k", "1", "--no-progress"]) == 0
    assert json.loads(canonical.read_text())["pass@1"] == 1.0


def test_a_correct_program_that_prints_a_lot_still_passes(tmp_path, go_problems):
    toolchain("go")
    problem = go_problems["Go/0"]
    chatty = "    for i := 0; i < 200000; i++ {\n        fmt.Println(\"a line of output that is not short\")\n    }\n" + \
        problem["canonical_solution"]
    samples = tmp_path / "s.jsonl"
    samples.write_text(json.dumps({"task_id": "Go/0", "completion": chatty}) + "\n")
    out = tmp_path / "r.json"
    assert commands.main(["humaneval", "--language", "go", "--problems", str(PROBLEMS / "go.jsonl"), "--samples",
                          str(samples), "--out", str(out), "--k", "1", "--no-progress"]) == 0
    assert json.loads(out.read_text())["results"][0]["result"] == "passed"


def test_problem_files_gzip_and_errors_that_name_line_and_field(tmp_path):
    gz = tmp_path / "go.jsonl.gz"
    gz.write_bytes(gzip.compress((PROBLEMS / "go.jsonl").read_bytes()))
    assert list(load_problem_set(gz, "go")) == ["Go/0", "Go/1", "Go/2", "Go/3"]
    with pytest.raises(ProblemFileError, match=r"go.jsonl:1: field \"task_id\" is 'Go/0', not a rust task id"):
        load_problem_set(PROBLEMS / "go.jsonl", "rust")
    lines = (PROBLEMS / "go.jsonl").read_text().splitlines()
    broken = json.loads(lines[1])
    del broken["test_setup"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(lines[0] + "\n" + json.dumps(broken) + "\n")
    with pytest.raises(ProblemFileError, match=r"bad.jsonl:2: field \"test_setup\" is missing"):
        load_problem_set(bad, "go")
    with pytest.raises(ProblemFileError, match="field \"buggy_solution\""):
        load_problem_set(PROBLEMS / "go.jsonl", "go", fix=True)


def test_a_hub_name_offline_says_what_to_download(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ProblemFileError, match=r"offline .*huggingface-cli download --repo-type dataset "
                                               r"bigcode/humanevalpack .*data/rust/data/humanevalpack.jsonl"):
        load_problem_set("bigcode/humanevalpack", "rust")
    assert commands.main(["humaneval", "--language", "go", "--canonical", "--out", str(tmp_path / "x.json")]) == 2
    assert "give --problems FILE" in capsys.readouterr().err


def test_missing_toolchain_is_a_clear_error(tmp_path, monkeypatch, capsys):
    import evaluation.toolchains as toolchains

    monkeypatch.setattr(toolchains, "GO", str(tmp_path / "no-go"))
    assert commands.main(["humaneval", "--language", "go", "--problems", str(PROBLEMS / "go.jsonl"), "--canonical",
                          "--out", str(tmp_path / "x.json")]) == 2
    assert "apt-get install -y golang-go golang-github-stretchr-testify-dev" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()
