"""Run the fork's own argument parsing and validation on an argv, as its training script would at start-up.

    python -m training.launch argv --config RUN.yaml --json | python tests/fork_parser_harness.py MEGATRON_DIR

``finetune_mtf.py`` (branch mtf) and ``pretrain_gpt.py`` (branch multi-query-attention) both start with
``initialize_megatron`` -> ``parse_args(None)`` -> ``validate_args(args, {'tokenizer_type': 'GPT2BPETokenizer'})``.
This does those two calls with ``sys.argv = [script, *argv]`` and ``WORLD_SIZE``/``RANK`` as rank 0 of a job of
``nodes x gpus_per_node`` processes started by ``training.launch exec`` (its ``FORK_ENV``), and nothing else (no CUDA, no distributed set-up, no tokenizer).
Reads one job (``training.launch argv --json``'s object) or a JSON list of them on stdin and prints one line per
job: ``accepted`` or ``rejected: <the fork's message>``; exit 0 when every job was accepted, else 1.

The fork's ``megatron/__init__.py`` imports its whole training stack (apex, CUDA kernels); only
``megatron.arguments`` is wanted, so ``megatron`` and ``megatron.model`` are registered here as bare packages
over the fork's folders (their ``__init__`` never runs) and the two modules the multi-query-attention branch's
``arguments.py`` reaches for beyond that (``megatron.global_vars``' retro holder, ``tools.retro.utils``) are
replaced by the small stand-ins below. Run it in its own process: it takes over the name ``megatron``.
"""
from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
import traceback
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file: the project's packages
from training.cluster.launch import FORK_ENV  # noqa: E402 - the environment training.launch exec gives the fork

SCRIPT_DEFAULTS = {"tokenizer_type": "GPT2BPETokenizer"}  # what both scripts pass as args_defaults


def _package(name: str, folder: Path) -> types.ModuleType:
    """A package whose submodules load from ``folder`` without running its ``__init__.py``."""
    module = types.ModuleType(name)
    module.__path__ = [str(folder)]
    sys.modules[name] = module
    return module


def _retro_stand_ins() -> None:
    """The retro-args holder and path helper ``arguments.py`` imports on the multi-query-attention branch."""
    holder = types.ModuleType("megatron.global_vars")
    state: dict[str, object] = {"retro": None}
    holder.set_retro_args = lambda retro_args: state.__setitem__("retro", retro_args)
    holder.get_retro_args = lambda: state["retro"]
    sys.modules["megatron.global_vars"] = holder
    for name in ("tools", "tools.retro"):
        sys.modules[name] = types.ModuleType(name)
    utils = types.ModuleType("tools.retro.utils")
    utils.get_args_path = lambda workdir: os.path.join(workdir, "args.json")
    sys.modules["tools.retro.utils"] = utils


def load_fork_arguments(megatron_dir: Path) -> types.ModuleType:
    """The fork's ``megatron.arguments`` module, with its ``megatron.model`` enums and GLU list."""
    for name in [n for n in sys.modules if n == "megatron" or n.startswith("megatron.")]:
        del sys.modules[name]  # megatron-core may have claimed the name
    megatron = _package("megatron", megatron_dir / "megatron")
    megatron.model = _package("megatron.model", megatron_dir / "megatron" / "model")
    importlib.import_module("megatron.model.glu_activations")  # arguments.py reads it as megatron.model.*
    if "global_vars import set_retro_args" in (megatron_dir / "megatron" / "arguments.py").read_text():
        _retro_stand_ins()
    return importlib.import_module("megatron.arguments")


def parse_and_validate(megatron_dir: Path, job: dict) -> str:
    """``accepted``, or ``rejected: ...`` with the fork's own message."""
    arguments = load_fork_arguments(megatron_dir)
    os.environ["WORLD_SIZE"] = str(job["nodes"] * job["gpus_per_node"])
    os.environ["RANK"] = "0"
    os.environ.update(FORK_ENV)
    os.environ.pop("LOCAL_RANK", None)
    sys.argv = [job["script"], *job["argv"]]
    try:
        with contextlib.redirect_stdout(sys.stderr):  # validate_args prints every argument on rank 0
            arguments.validate_args(arguments.parse_args(None), dict(SCRIPT_DEFAULTS))
    except SystemExit as exc:  # argparse: unknown flag, bad value, missing value
        return f"rejected: argparse exit {exc.code} (its message is on stderr)"
    except Exception as exc:  # noqa: BLE001 - validate_args' asserts and the split-file parser's
        where = traceback.extract_tb(exc.__traceback__)[-1]
        return f"rejected: {type(exc).__name__}: {exc} (at {Path(where.filename).name}:{where.lineno})"
    return "accepted"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python tests/fork_parser_harness.py MEGATRON_DIR < job.json", file=sys.stderr)
        return 2
    jobs = json.load(sys.stdin)
    verdicts = [parse_and_validate(Path(argv[0]).resolve(), job) for job in ([jobs] if isinstance(jobs, dict) else jobs)]
    print("\n".join(verdicts))
    return 0 if all(v == "accepted" for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
