"""HumanEvalFix as OctoPack evaluates it: HumanEvalPack's buggy functions, the commit-format prompt, the harness's cuts.

    prompt = fix_prompt("go", problem)               # <commit_before>...<commit_msg>Fix bugs in X.<commit_after>...
    code = fixed_code("go", problem, generated)      # the whole function the model wrote (prompt base + generation)
    text = fix_program("go", problem, code)          # what runs: HumanEvalPack's program around it

From ``bigcode_eval/tasks/humanevalpack.py`` (task ``humanevalfixtests-LANGUAGE``, prompt ``starcodercommit``:
the harness's commit-format prompt, in the form of the commits a StarCoder-family model saw in pretraining): the
prompt base is the declaration (Rust: ``fn main(){}`` and the declaration); the context is the prompt base, the
buggy solution, a newline and the tests; the prompt is ``<commit_before>CONTEXT<commit_msg>Fix bugs in
ENTRY.<commit_after>BASE``, stripped. It is not the prompt behind OctoPack's published HumanEvalFix rows
(``octopack/evaluation/run/eval_scripts``): StarCoder's used ``--prompt instruct`` (``CONTEXT\\nFix bugs in
ENTRY.\\n\\nBASE``), OctoCoder's ``--prompt octocoder`` (``Question: Fix bugs in ENTRY.\\nCONTEXT\\n\\nAnswer:\\nBASE``),
so a number from here sits beside theirs with that difference. Generation stops at the
language's stop words (Python: ``\\nclass``, ``\\ndef``, ``\\n#``, ``\\n@``, ``\\nprint``, ``\\nif``, ``\\nassert``; Go:
``\\n//``, ``\\nfunc main(``, ``struct``, ``\\nfunc``; Rust: none), the literal ``<|endoftext|>`` that humanevalpack.py
adds to each and the tokenizer's end-of-text token (``evaluation.generation_tasks``), or when the function is
complete (Python: a non-indented line; Go/Rust: the brace that closes it); OctoPack samples 20 per problem at
temperature 0.2 (top-p 0.95) with ``--max_length_generation 2048``. The generation is cut the same way
(``remove_last_block``), appended to the stripped prompt base, and run with the reference ``"\\n" + test``:
Python after HumanEval-X's import block (numpy left out, see ``evaluation.python_programs``), Go and Rust as
``evaluation.compiled_programs.humanevalpack_program``. Time limits (LANGUAGE_TO_TIMEOUT): Python 10 s, Go 20 s,
Rust 300 s (there for cargo's first build; here the run phase's, the compile phase has its own).
Library module behind ``python -m evaluation humanevalfix``.
"""
from __future__ import annotations

from evaluation.compiled_programs import RUST_MAIN_PACK, close_function, humanevalpack_program
from evaluation.python_programs import PYTHON_IMPORTS, first_block

FIX_STOP_WORDS = {"python": ("\nclass", "\ndef", "\n#", "\n@", "\nprint", "\nif", "\nassert"),
                  "go": ("\n//", "\nfunc main(", "struct", "\nfunc"), "rust": ()}
FIX_TIMEOUT_S = {"python": 10.0, "go": 20.0, "rust": 300.0}
FIX_MAX_LENGTH = 2048  # OctoPack's --max_length_generation for HumanEvalPack


def prompt_base(language: str, problem: dict) -> str:
    return (RUST_MAIN_PACK if language == "rust" else "") + problem["declaration"]


def fix_prompt(language: str, problem: dict) -> str:
    base = prompt_base(language, problem)
    context = base + problem["buggy_solution"] + "\n" + problem["test"]
    return f"<commit_before>{context}<commit_msg>Fix bugs in {problem['entry_point']}.<commit_after>{base}".strip()


def cut_generation(language: str, generated: str, stops: tuple[str, ...]) -> str:
    """The harness's ``remove_last_block`` on the generation (the text after the stripped prompt), right-stripped."""
    generated = generated.rstrip()
    if language != "python":
        return close_function(generated, stops)
    for word in stops:
        if word in generated:
            generated = generated[:generated.find(word)]
    return first_block(generated)


def fixed_code(language: str, problem: dict, completion: str) -> str:
    """The function as scored: the prompt base, right-stripped, then the (cut) completion."""
    return prompt_base(language, problem).rstrip() + completion


def reference_completion(language: str, problem: dict, field: str) -> str:
    """``canonical_solution`` or ``buggy_solution`` as a completion of the stripped prompt base."""
    base = prompt_base(language, problem)
    return base[len(base.rstrip()):] + problem[field]


def fix_program(language: str, problem: dict, code: str) -> str:
    if language == "python":
        return ("\n".join(PYTHON_IMPORTS) + "\n" + code).strip() + "\n" + "\n" + problem["test"]
    return humanevalpack_program(language, problem, code)
