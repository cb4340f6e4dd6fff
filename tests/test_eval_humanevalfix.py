"""HumanEvalFix as OctoPack evaluates it, on hand-written HumanEvalPack-shaped problems in Python, Go and Rust."""
import json
from pathlib import Path

import pytest

from evaluation import commands
from evaluation.humanevalfix import cut_generation, fix_program, fix_prompt, fixed_code
from evaluation.problem_files import read_problem_file
from evaluation.toolchains import ToolchainMissing, shared_build
from tests.evaluation_fixtures import tiny_hf_folder

PROBLEMS = Path(__file__).parent / "fixtures" / "eval_problems"


def pack(language):
    return read_problem_file(PROBLEMS / f"humanevalpack_{language}.jsonl", language, fix=True)


def test_commit_prompt_has_the_tests_in_the_context_and_the_signature_after_commit_after():
    problem = pack("rust")["Rust/0"]
    base = "fn main(){}\n" + problem["declaration"]
    expected = (f"<commit_before>{base}{problem['buggy_solution']}\n{problem['test']}<commit_msg>Fix bugs in "
                f"sum_of_squares.<commit_after>{base}").strip()
    assert fix_prompt("rust", problem) == expected
    go = pack("go")["Go/2"]
    assert fix_prompt("go", go).endswith("<commit_msg>Fix bugs in Distance.<commit_after>\nfunc Distance(a, b float64) "
                                         "float64 {".strip())


def test_cuts_are_the_harness_remove_last_block():
    assert cut_generation("python", "\n    return 1\n\ndef other():\n    pass\n", ("\ndef",)) == "\n    return 1\n"
    assert cut_generation("python", "\n    return 1\nprint(2)", ()) == "\n    return 1"
    assert cut_generation("go", "\n    return 1\n}\nfunc main() {}", ("\nfunc main(",)) == "\n    return 1\n}"



@pytest.mark.parametrize("task", ["humanevalfix python", "humanevalfix go", "humanevalfix rust", "humaneval go",
                                  "humaneval rust"])
def test_humanevalpack_tasks_stop_at_the_literal_end_of_text_whatever_the_tokenizers_eos(task):
    """humanevalpack.py appends "<|endoftext|>" to every language's stop words, then the tokenizer's EOS: a Llama
    (EOS </s>) that writes the text <|endoftext|> has its generation cut there, as in the harness."""
    from types import SimpleNamespace

    from evaluation.generation_tasks import humaneval_task, humanevalfix_task
    from evaluation.humaneval_generate import stop_words

    name, language = task.split()
    made = (humanevalfix_task if name == "humanevalfix" else humaneval_task)(language)
    stops = stop_words(made, SimpleNamespace(eos_token="</s>"))
    assert stops[-2:] == ("<|endoftext|>", "</s>")
    body = "\n    return 1" if language == "python" else "\n    return 1\n}"
    assert made.cut(body + "<|endoftext|>\nmore text", stops) == body
    assert stop_words(made, SimpleNamespace(eos_token="<|endoftext|>")).count("<|endoftext|>") == 1

def test_go_program_imports_what_the_fix_uses_outside_comments():
    problem = pack("go")["Go/2"]
    code = fixed_code("go", problem, "\n    // math.Floor is not used here\n    return math.Abs(a - b)\n}")
    text = fix_program("go", problem, code)
    assert text.count('"math"') == 1 and text.endswith("\n\n" + problem["test"])
    assert '"strings"' not in fix_program("go", problem, fixed_code("go", problem, "\n    // strings.X\n    return a\n}"))


@pytest.mark.parametrize("language", ["python", "go", "rust"])
def test_canonical_solutions_pass_and_buggy_ones_fail(tmp_path, language):
    if language != "python":
        try:
            shared_build((language,))
        except ToolchainMissing as exc:
            pytest.skip(str(exc))
    for flag, expected in (("--canonical", 1.0), ("--buggy", 0.0)):
        out = tmp_path / f"{flag[2:]}.json"
        assert commands.main(["humanevalfix", "--language", language, "--problems",
                              str(PROBLEMS / f"humanevalpack_{language}.jsonl"), flag, "--out", str(out), "--k", "1",
                              "--no-progress", "--workers", "2"]) == 0
        results = json.loads(out.read_text())
        assert results["pass@1"] == expected and results["problems"] == 4, results["results"]
        assert results["settings"]["task"] == "humanevalfix"


def test_generate_fixes_with_the_commit_prompt(tmp_path):
    hf = tiny_hf_folder(tmp_path / "hf")
    out = tmp_path / "fix"
    assert commands.main(["humanevalfix", "--language", "python", "--problems", str(PROBLEMS / "humanevalpack_python.jsonl"),
                          "--model", str(hf), "--out", str(out), "--limit", "2", "--n", "2", "--k", "1,2",
                          "--no-progress", "--batch-size", "4"]) == 0
    settings = json.loads((out / "settings.json").read_text())
    assert settings["task"] == "humanevalfix" and settings["generation"]["temperature"] == 0.2
    assert settings["length_budget"]["max_length_generation"] == 2048 and settings["sandbox"]["timeout_s"] == 10.0
    assert settings["generation"]["stop_sequences"][-1] == "<|endoftext|>" and settings["generation"]["stop_rule"] == "unindented"
    results = json.loads((out / "results.json").read_text())
    assert results["samples"] == 4 and results["subset"].startswith("subset: 2 of 4")


def test_a_model_run_refuses_a_foreign_out_before_any_problem_or_checker(tmp_path, monkeypatch, capsys):
    """--model --out is claimed first: a file that is no earlier output is refused before the problems are read
    and before a checker (for Go or Rust: the shared build) is made."""
    def never(*args, **kwargs):
        raise AssertionError("reached past the --out check")

    monkeypatch.setattr(commands, "make_checker", never)
    monkeypatch.setattr(commands, "load_problem_set", never)
    foreign = tmp_path / "notes.txt"
    foreign.write_text("mine")
    assert commands.main(["humanevalfix", "--language", "go", "--problems", str(PROBLEMS / "humanevalpack_go.jsonl"),
                          "--model", str(tmp_path / "hf"), "--out", str(foreign), "--no-progress"]) == 2
    assert "--out" in capsys.readouterr().err and foreign.read_text() == "mine"
