"""Run one sample's test program for a language: Python in the sandbox as the harness runs it, Go and Rust as jobs.

    checker = make_checker("python", timeout_s=3.0)                    # or "go" / "rust" (builds the shared build once)
    result = checker.check(problem, sample)                           # a ProgramResult
    checker.run_text(program_text)                                     # an already assembled program (HumanEvalFix)
    checker.settings()                                                 # what results.json records about the limits

Python: the BigCode ``humaneval`` program (``evaluation.python_programs``: the prompt, or the stripped prompt
when the sample was generated in harness mode, the completion, the tests, ``check(ENTRY)``), or HumanEval-X's
for a problem file without ``entry_point``, in the harness's prelude. Go and Rust: HumanEval-X's program
(``evaluation.compiled_programs``), compiled and run as a job (``evaluation.toolchain_jobs``) with separate
compile and run time limits. Library module.
"""
from __future__ import annotations

import contextlib
import dataclasses
from typing import Callable

from evaluation.compiled_programs import humaneval_x_program
from evaluation.humaneval_tasks import Sample
from evaluation.python_programs import harness_wrapped, humaneval_program, humaneval_x_program as python_x_program
from evaluation.sandbox import ProgramResult, Sandbox, SandboxLimits
from evaluation.toolchain_jobs import JobRunner
from evaluation.toolchains import SharedBuild, go_job, rust_job, shared_build

RUN_TIMEOUT_S = {"python": 3.0, "go": 20.0, "rust": 20.0}  # the harness: humaneval 3 s; HumanEvalPack go 20 s
COMPILE_TIMEOUT_S = 60.0


def python_program(problem: dict, sample: Sample) -> str:
    if "entry_point" in problem:
        prefix = problem["prompt"] if sample.prefix is None else sample.prefix
        return humaneval_program(problem, prefix, sample.completion)
    return python_x_program(problem, sample.completion)


def sandbox_settings(sandbox: Sandbox) -> dict:
    """The limits asked for and what holds on this machine (cgroup or not, uid, seccomp): results files record it."""
    return {**dataclasses.asdict(sandbox.limits), "in_force": sandbox.in_force}


class PythonChecker:
    language = "python"

    def __init__(self, sandbox: Sandbox, program: Callable[[dict, Sample], str] | None = None) -> None:
        self.sandbox = sandbox
        self.program = program or python_program

    def run_text(self, text: str) -> ProgramResult:
        return self.sandbox.run(harness_wrapped(text))

    def check(self, problem: dict, sample: Sample) -> ProgramResult:
        return self.run_text(self.program(problem, sample))

    def warm(self, workers: int) -> contextlib.AbstractContextManager:
        """Sandboxes started ahead while many programs run (the sandbox's warm pool)."""
        return self.sandbox.warm(2 * max(1, workers))

    def settings(self) -> dict:
        return {"language": "python", "sandbox": sandbox_settings(self.sandbox),
                "prelude": "BigCode harness: exec in {} (__name__ == 'builtins'), reliability_guard, output swallowed"}


class CompiledChecker:
    def __init__(self, language: str, build: SharedBuild, compile_s: float, run_s: float,
                 program: Callable[[dict, Sample], str] | None = None) -> None:
        self.language, self.build, self.compile_s, self.run_s = language, build, compile_s, run_s
        self.program = program or (lambda problem, sample: humaneval_x_program(language, problem, sample.completion))
        self.runner = JobRunner(language, compile_s, run_s)
        self.make_job = go_job if language == "go" else rust_job

    def run_text(self, text: str) -> ProgramResult:
        return self.runner.run(self.make_job(self.build, text, self.compile_s, self.run_s))

    def check(self, problem: dict, sample: Sample) -> ProgramResult:
        return self.run_text(self.program(problem, sample))

    def warm(self, workers: int) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()  # each job starts its own sandbox (no pool for native programs)

    def settings(self) -> dict:
        return {"language": self.language, "compile_timeout_s": self.compile_s, "run_timeout_s": self.run_s,
                "sandbox": sandbox_settings(self.runner.sandbox), "shared_build": str(self.build.root)}


def make_checker(language: str, timeout_s: float | None = None, compile_timeout_s: float | None = None,
                 program: Callable[[dict, Sample], str] | None = None):
    """A checker for ``language``; ``timeout_s`` is the run phase's limit (Python: the program's); ``program``
    builds the text to run from a problem and a sample (default: the HumanEval / HumanEval-X program)."""
    run_s = timeout_s if timeout_s is not None else RUN_TIMEOUT_S[language]
    if language == "python":
        return PythonChecker(Sandbox(SandboxLimits(timeout_s=run_s)), program)
    build = shared_build((language,))
    return CompiledChecker(language, build, compile_timeout_s or COMPILE_TIMEOUT_S, run_s, program)
