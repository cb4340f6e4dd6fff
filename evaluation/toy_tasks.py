"""A TOY task family for the demo: arithmetic one-liners from templates, small enough for a tiny model to learn.

    problems = toy_problems("go", count=16, seed=1234)   # HumanEval-X format: {"Go/toy_0": {...}, ...}
    pairs = toy_training_pairs(("python", "go"), per_language=600, seed=1234, held_out=16)   # {"inputs", "targets"}
    python -m evaluation toy --out out/demo/toy          # the problem files, wrong samples and pairs, in one folder

Every problem is ``f(ARG) = ARG OP C`` in Python, Go or Rust: the docstring states it ("Return x * 7."),
the body is one return statement, the tests call it on three values (which ``ARG + C + 1``, the wrong
completion kept for the harness check, never passes). Problems differ by operation (plus,
minus, times), constant (1-9), argument name and function name. The test problems are drawn first from all
combinations of operation, constant and argument name; the fine-tuning pairs come only from the other
combinations (never a test problem), in the harness's layout: the stripped prompt as ``inputs``, the body (and
Go's closing brace) then end of text as ``targets``. It measures whether fine-tuning moved a tiny model at all,
nothing about real coding ability: the demo's report labels it a toy. Library module behind
``python -m evaluation toy``.
"""
from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

from guardrails.output_records import OutputKind
from evaluation.compiled_programs import generation_prompt

OPS = {"plus": "+", "minus": "-", "times": "*"}
CONSTANTS = tuple(range(1, 10))
ARGS = ("x", "n")  # two names: learnable by the demo's 2-layer model in a couple of hundred steps
PROBE = (3, -4, 10)  # the tests' arguments
NAME_TAGS = ("toy", "fn", "calc", "apply")  # function names of the pairs (the tests': toy_N); combinations differ
GO_SETUP = 'package main\n\nimport (\n    "testing"\n    "github.com/stretchr/testify/assert"\n)\n'
EOS = "<|endoftext|>"


def _combinations(seed: int) -> list[tuple[str, int, str]]:
    combos = list(itertools.product(OPS, CONSTANTS, ARGS))
    random.Random(seed).shuffle(combos)
    return combos


def _value(op: str, constant: int, x: int) -> int:
    return x + constant if op == "plus" else x - constant if op == "minus" else x * constant


def _python(index: int, op: str, constant: int, arg: str, tag: str) -> dict:
    name = f"{tag}_{index}"
    prompt = f'def {name}({arg}: int) -> int:\n    """Return {arg} {OPS[op]} {constant}."""\n'
    checks = "".join(f"    assert candidate({x}) == {_value(op, constant, x)}\n" for x in PROBE)
    return {"task_id": f"Python/{name}", "prompt": prompt, "entry_point": name, "declaration": prompt.split("\n")[0] + "\n",
            "canonical_solution": f"    return {arg} {OPS[op]} {constant}\n",
            "test": f"\n\ndef check(candidate):\n{checks}\n", "wrong_solution": f"    return {arg} + {constant + 1}\n"}


def _go(index: int, op: str, constant: int, arg: str, tag: str) -> dict:
    name = f"{tag.capitalize()}{index}"
    signature = f"func {name}({arg} int) int {{\n"
    checks = "".join(f"    assert.Equal({_value(op, constant, x)}, {name}({x}))\n" for x in PROBE)
    return {"task_id": f"Go/{tag}_{index}", "prompt": f"// {name} returns {arg} {OPS[op]} {constant}.\n{signature}", "import": "",
            "declaration": "\n" + signature, "test_setup": GO_SETUP,
            "canonical_solution": f"\treturn {arg} {OPS[op]} {constant}\n}}\n",  # gofmt's tab: Go differs from line one
            "test": f"func Test{name}(t *testing.T) {{\n    assert := assert.New(t)\n{checks}}}\n",
            "wrong_solution": f"\treturn {arg} + {constant + 1}\n}}\n"}


def _rust(index: int, op: str, constant: int, arg: str, tag: str) -> dict:
    name = f"{tag}_{index}"
    signature = f"fn {name}({arg}: i64) -> i64{{\n"
    checks = "".join(f"        assert_eq!({name}({x}), {_value(op, constant, x)});\n" for x in PROBE)
    return {"task_id": f"Rust/{name}", "prompt": f"\n/*\n Return {arg} {OPS[op]} {constant}.\n*/\n", "declaration": signature,
            "canonical_solution": f"    {arg} {OPS[op]} {constant}\n}}\n",
            "test": f"\n#[cfg(test)]\nmod tests {{\n    use super::*;\n\n    #[test]\n    fn test_{name}() {{\n{checks}    }}\n}}\n",
            "wrong_solution": f"    {arg} + {constant + 1}\n}}\n"}


MAKERS = {"python": _python, "go": _go, "rust": _rust}


def toy_problems(language: str, count: int, seed: int) -> dict[str, dict]:
    """The test problems: the first ``count`` combinations of the seeded order."""
    made = [MAKERS[language](i, *combo, "toy") for i, combo in enumerate(_combinations(seed)[:count])]
    return {p["task_id"]: p for p in made}


def toy_training_pairs(languages: tuple[str, ...], per_language: int, seed: int, held_out: int) -> list[dict]:
    """Fine-tuning pairs from the combinations after the ``held_out`` test ones, in the harness's layout."""
    pool = _combinations(seed)[held_out:]
    rng = random.Random(seed + 1)
    pairs = []
    for language in languages:
        for i in range(per_language):
            p = MAKERS[language](rng.randrange(1000), *pool[i % len(pool)], rng.choice(NAME_TAGS))
            prompt = generation_prompt(language, p).strip()  # what the harness will prompt with
            pairs.append({"inputs": prompt, "targets": "\n" + p["canonical_solution"].rstrip() + EOS})
    rng.shuffle(pairs)
    return pairs


def toy_files(languages: tuple[str, ...], problems: int, pairs_per_language: int, seed: int,
              trained: tuple[str, ...]) -> dict[str, list[dict]]:
    """File name -> records: ``toy_LANG.jsonl`` (problems), ``toy_LANG_wrong.jsonl`` (a wrong completion of each,
    for the harness check), ``toy_pairs.jsonl`` (fine-tuning pairs for the ``trained`` languages)."""
    files: dict[str, list[dict]] = {}
    for language in languages:
        made = toy_problems(language, problems, seed)
        files[f"toy_{language}.jsonl"] = [{k: v for k, v in p.items() if k != "wrong_solution"} for p in made.values()]
        files[f"toy_{language}_wrong.jsonl"] = [{"task_id": t, "completion": p["wrong_solution"]} for t, p in made.items()]
    files["toy_pairs.jsonl"] = toy_training_pairs(trained, pairs_per_language, seed, problems)
    return files


def write_toy_folder(out: Path, files: dict[str, list[dict]], manifest: dict) -> list[Path]:
    """The folder ``out``, whole (a temporary renamed into place), its record ``toy.json`` written last."""
    from guardrails.atomic_files import atomic_write
    from guardrails.atomic_folder import atomic_output_dir
    from guardrails.output_records import write_record

    with atomic_output_dir(out) as tmp:
        for name, records in files.items():
            with atomic_write(tmp / name, "w") as handle:
                handle.writelines(json.dumps(r) + "\n" for r in records)
        write_record(tmp / TOY_FOLDER.record, TOY_FOLDER, tmp,
                     facts={**manifest, "files": {n: len(r) for n, r in files.items()}}, indent=1)
    return [*(out / name for name in files), out / TOY_FOLDER.record]


TOY_FOLDER = OutputKind("a toy task folder of python -m evaluation toy", "evaluation toy", "toy.json")


def toy(args) -> int:
    from guardrails.output_paths import claim_folder

    languages, trained = tuple(args.languages.split(",")), tuple(args.trained.split(",")) if args.trained else ()
    unknown = sorted(set(languages + trained) - set(MAKERS))
    if unknown or not set(trained) <= set(languages) or not 0 < args.problems <= len(_combinations(args.seed)) - 1:
        raise ValueError(f"--languages/--trained: from {', '.join(MAKERS)} (trained ones among the languages); "
                         f"--problems: 1 to {len(_combinations(args.seed)) - 1}")
    files = toy_files(languages, args.problems, args.pairs_per_language, args.seed, trained)
    claim_folder(args.out, TOY_FOLDER, "--out")
    write_toy_folder(args.out, files, {"written_by": "python -m evaluation toy", "seed": args.seed,
                                       "note": "A TOY task family (arithmetic one-liners), not a benchmark"})
    print(f"toy tasks: {args.problems} problems in {', '.join(languages)}, {len(files['toy_pairs.jsonl'])} fine-tuning "
          f"pairs ({', '.join(trained) or 'none'}) -> {args.out}")
    return 0


def add_toy_parser(commands) -> None:
    parser = commands.add_parser("toy", help="the demo's TOY task family: problems, wrong samples, fine-tuning pairs")
    parser.add_argument("--out", type=Path, required=True, help="a folder (toy_LANG.jsonl, toy_pairs.jsonl, toy.json)")
    parser.add_argument("--languages", default="python,go,rust")
    parser.add_argument("--trained", default="python,go", help="languages with fine-tuning pairs")
    parser.add_argument("--problems", type=int, default=16, help="test problems per language")
    parser.add_argument("--pairs-per-language", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=1234)
    parser.set_defaults(func=toy)
