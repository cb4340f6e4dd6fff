"""Go and Rust test programs, assembled exactly as HumanEval-X and HumanEvalPack assemble them.

    prompt = generation_prompt("go", problem)          # what the model continues (the program before the completion)
    text = humaneval_x_program("go", problem, completion)   # main_test.go / main.rs for `humaneval --language`
    text = humanevalpack_program("rust", problem, code)     # HumanEvalFix: ``code`` is the whole function

HumanEval-X (``codegeex/benchmark/humaneval-x/evaluate_humaneval_x.py``): Go removes the prompt's import block
and writes ``test_setup``, an ``import (...)`` of each HumanEval-X standard package (:data:`GO_PACKAGES`) not in
the test setup whose name followed by a dot occurs in the completion, the prompt, the completion and the test,
as ``main_test.go`` for ``go test``; Rust writes ``fn main(){ ... }``, the declaration (its ``use`` lines and
the signature), the prompt (a doc comment), the completion and the test module, built as a test binary.

HumanEvalPack (``bigcode_eval/tasks/humanevalpack.py``, ``process_results``): the generation is the whole
function. Go drops from the test setup each quoted import already in it, imports each package used on a line
that is not a ``//`` comment and not quoted in it (by its last path element, as the harness does), and drops a
second ``package main``; Rust adds ``fn main(){}`` when absent, each declaration line not already present
(skipping a ``fn`` line whose name is), and keeps at most one ``fn main()``. The reference (``"\\n" + test``)
follows after a newline.

:func:`close_function` is the harness's ``remove_last_block`` for Go and Rust: cut at the stop words, then at
the brace that closes the function the prompt opened (or, when none does, after the last ``}``). Library module.
"""
from __future__ import annotations

from evaluation.toolchains import GO_PACKAGES

RUST_MAIN_X = "\nfn main(){ \n } \n"  # HumanEval-X's spelling
RUST_MAIN_PACK = "fn main(){}\n"  # HumanEvalPack's
# the harness's HumanEvalPack stop words (LANGUAGE_TO_STOP_WORDS; the end-of-text token is added by the caller)
STOP_WORDS = {"go": ("\n//", "\nfunc main(", "struct", "\nfunc"), "rust": ()}


def generation_prompt(language: str, problem: dict) -> str:
    """The text before the completion in the assembled program (HumanEval-X's Rust prompt is only a comment)."""
    if language == "rust" and "fn main(" not in problem["prompt"]:
        return RUST_MAIN_X + problem["declaration"] + problem["prompt"]
    return problem["prompt"]


def _go_imports(packages: list[str]) -> str:
    return "import (\n" + "    ".join(p + "\n" for p in packages) + ")"


def humaneval_x_program(language: str, problem: dict, completion: str) -> str:
    if language == "go":
        prompt = problem["prompt"].replace(problem["import"], "")
        setup = problem["test_setup"]
        used = [f'"{p}"' for p in GO_PACKAGES if p not in setup and p.split("/")[-1] + "." in completion]
        imports = _go_imports(used) + "\n" if used else ""
        return setup + "\n" + imports + prompt + completion + "\n" + problem["test"]
    if language == "rust":
        return generation_prompt("rust", problem) + completion + problem["test"]
    raise ValueError(f"no compiled-language program for {language!r}")


def _go_pack(problem: dict, code: str, reference: str) -> str:
    setup = problem["test_setup"] + "\n"
    for line in setup.split("\n"):
        line = line.replace("import", "").replace("(", "").replace(")", "").strip()
        if line.startswith('"') and line in code:
            setup = setup.replace(line, "")
    whole = setup + code + "\n" + reference
    used = set()
    for package in GO_PACKAGES:
        name = package.split("/")[-1]
        if f'"{package}"' not in whole and any(f"{name}." in line and not line.strip().startswith("//")
                                                for line in whole.split("\n")):
            used.add(f'"{name}"')  # the harness imports the last path element ("rand" for math/rand), kept as is
    imports = "import (\n" + "\n".join("    " + p for p in sorted(used)) + "\n)\n" if used else ""
    if "package main" in code and "package main" in setup:
        code = code.replace("package main", "")
    return setup + imports + code


def _rust_pack(problem: dict, code: str) -> str:
    head = "" if "fn main()" in code else RUST_MAIN_PACK
    for line in problem["declaration"].split("\n"):
        stripped = line.strip()
        if stripped not in code:
            if stripped.startswith("fn") and stripped.split("(")[0] in code:
                continue
            head += stripped + "\n"
    return head + "fn main()".join(code.split("fn main()")[0:2])


def humanevalpack_program(language: str, problem: dict, code: str) -> str:
    """HumanEvalPack's program for a whole generated function ``code`` (prompt base + generation)."""
    reference = "\n" + problem["test"]
    if language == "go":
        return _go_pack(problem, code, reference) + "\n" + reference
    if language == "rust":
        return _rust_pack(problem, code) + "\n" + reference
    raise ValueError(f"no compiled-language program for {language!r}")


def close_function(generation: str, stops: tuple[str, ...]) -> str:
    """The harness's ``remove_last_block`` (Go, Rust): stop words, then the brace closing the prompt's ``{``."""
    for word in stops:
        if word in generation:
            generation = generation[:generation.find(word)]
    depth = 1
    for index, char in enumerate(generation):
        depth += char == "{"
        depth -= char == "}"
        if depth == 0:
            return generation[:index + 1]
    return generation[:generation.rfind("}")] + "}" if "}" in generation else generation
