"""Benchmark Go and Rust checks: this project's shared build vs the HumanEval-X way (no shared build), seconds per task.

Run::

    python scripts/bench_eval_languages.py [--workers N] [--tasks 16] [--baseline-tasks 3]

(``scripts/bench_eval.py`` runs it too.) Tasks are the canonical solutions of the TOY problems
(``evaluation.toy_tasks``; not a benchmark's problems), assembled as HumanEval-X assembles them. Ours: each
task is one sandboxed job, ``go test -c`` against the Go build cache compiled once / ``rustc --test`` against
the crates compiled once (``evaluation.toolchains``), then the test binary. The HumanEval-X way, measured in
the same run with the same worker count: per task a fresh ``go test main_test.go`` with an empty build cache,
and a fresh cargo project (``Cargo.toml`` with rand, regex and md5, the program as ``src/main.rs``, its own
target folder) built and run by ``cargo test``, all offline from Debian's packages and outside the sandbox
(trusted code; a baseline of the toolchain work alone). Both must pass every task. Prints
``LANG: ... s/task`` and ``LANG_ratio_to_humaneval_x=<float>`` (their seconds per task / ours: > 1 means the
shared build is faster).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from evaluation.checkers import make_checker
from evaluation.compiled_programs import humaneval_x_program
from evaluation.humaneval_score import score_samples
from evaluation.humaneval_tasks import canonical_samples
from evaluation.toolchains import CARGO, GO, cargo_files, cargo_env, go_env
from evaluation.toy_tasks import toy_problems


def humaneval_x_way(language: str, program: str) -> bool:
    """One task the HumanEval-X way, nothing shared: a fresh folder, cache and (Rust) cargo project."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if language == "go":
            (work / "main_test.go").write_text(program, encoding="utf-8")
            argv, env = [GO, "test", "-timeout=20s", "main_test.go"], go_env(work / "cache", str(work))
        else:
            files = {**cargo_files(), "src/main.rs": program}
            files["Cargo.toml"] = files["Cargo.toml"].replace('name = "shared_crates"', 'name = "task"')
            del files["src/lib.rs"]
            for name, text in files.items():
                (work / name).parent.mkdir(parents=True, exist_ok=True)
                (work / name).write_text(text, encoding="utf-8")
            argv, env = [CARGO, "test", "--offline", "-q"], cargo_env(work / "cargo-home", work / "target")
        return subprocess.run(argv, cwd=work, env=env, capture_output=True).returncode == 0


def bench_language(language: str, workers: int, tasks: int, baseline_tasks: int) -> float:
    problems = toy_problems(language, tasks, seed=1234)
    checker = make_checker(language)  # builds the shared build first when missing (not timed)
    samples = canonical_samples(problems)
    started = time.perf_counter()
    ours = score_samples(samples, problems, checker, [1], workers, progress=False)
    ours_s = (time.perf_counter() - started) / len(samples)
    programs = [humaneval_x_program(language, problems[s.task_id], s.completion) for s in samples[:baseline_tasks]]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        passed = list(pool.map(lambda text: humaneval_x_way(language, text), programs))
    theirs_s = (time.perf_counter() - started) / len(programs)
    if ours["pass@1"] != 1.0 or not all(passed):
        raise SystemExit(f"{language}: a canonical solution failed (ours {ours['pass@1']}, theirs {passed}): void")
    print(f"{language}: shared build {ours_s:.2f} s/task ({len(samples)} tasks, sandboxed), HumanEval-X way "
          f"{theirs_s:.2f} s/task ({len(programs)} tasks, no shared build), {workers} workers")
    print(f"{language}_ratio_to_humaneval_x={theirs_s / ours_s:.3f}")
    return theirs_s / ours_s


def bench_languages(workers: int, tasks: int = 16, baseline_tasks: int = 3) -> dict[str, float]:
    return {language: bench_language(language, workers, tasks, baseline_tasks) for language in ("go", "rust")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument("--baseline-tasks", type=int, default=3, help="the slow baseline runs on fewer tasks")
    args = parser.parse_args(argv)
    bench_languages(args.workers, args.tasks, args.baseline_tasks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
