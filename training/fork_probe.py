"""What the fork will find at run time, seen from inside the job's environment (the site env sourced).

    python -m training.fork_probe [--data-folder F ...]      # one JSON object on stdout

``training.fork_runtime`` runs this with ``cluster.site_env`` sourced, exactly as ``finetune_starcoderbase.sh``
prepares the job (same shell options, same working folder), and turns the answer into preflight findings. It
reports, without changing anything:

* ``python``, ``megatron_dir``: the interpreter the job's ``python`` is, and ``MEGATRON_DIR`` as the job sees it
  (the site env's, else the one the job inherits from the shell that submits it);
* ``imports``: for ``apex`` (its ``FusedAdam``), ``amp_C`` and ``fused_mix_prec_layer_norm_cuda`` (apex's CUDA
  extensions the fork imports), null when importable, else the error;
* ``helpers``: the fork's dataset helper (``megatron/data/helpers*.so``, built by ``make`` at every start): whether
  it is built and newer than ``helpers.cpp``; else what ``make`` needs: ``make``, a C++ compiler (``$CXX`` or
  ``g++``), ``python3 -m pybind11 --includes`` and ``python3-config`` (the Makefile's own commands);
* ``writable``: each data folder (the fork writes its index maps next to the data); ``checkout_writable``: the
  checkout's ``megatron/data`` and ``megatron/fused_kernels`` (it builds its helper and kernels there).
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

from guardrails.command_errors import run_command

FORK_EXTENSIONS = ("apex", "amp_C", "fused_mix_prec_layer_norm_cuda")


def _import_error(name: str) -> str | None:
    try:
        module = importlib.import_module(name)
        if name == "apex":
            importlib.import_module("apex.optimizers").FusedAdam  # noqa: B018 - what the fork imports from it
        del module
    except Exception as exc:  # noqa: BLE001 - any failure to import is the answer (ImportError, OSError of a .so)
        return f"{type(exc).__name__}: {exc}"
    return None


def _command_output(argv: list[str]) -> str | None:
    """The first line of ``argv``'s output, or None when it cannot run or fails."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else None


def _helpers(megatron_dir: Path) -> dict[str, Any]:
    data = megatron_dir / "megatron" / "data"
    source = data / "helpers.cpp"
    built = [p for p in data.glob("helpers*.so")] if data.is_dir() else []
    fresh = bool(built) and source.is_file() and max(p.stat().st_mtime for p in built) >= source.stat().st_mtime
    return {"built": fresh, "make": shutil.which("make"), "compiler": shutil.which(os.environ.get("CXX", "g++")),
            "pybind11": _command_output(["python3", "-m", "pybind11", "--includes"]),
            "python3_config": _command_output(["python3-config", "--extension-suffix"]),
            "extension_suffix": sysconfig.get_config_var("EXT_SUFFIX")}


def _writable(folder: Path) -> bool:
    return folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)


def probe(data_folders: list[str]) -> dict[str, Any]:
    megatron_dir = os.environ.get("MEGATRON_DIR", "")
    report: dict[str, Any] = {"python": sys.executable, "megatron_dir": megatron_dir,
                              "imports": {name: _import_error(name) for name in FORK_EXTENSIONS}}
    report["writable"] = {folder: _writable(Path(folder)) for folder in data_folders}
    if megatron_dir:
        checkout = Path(megatron_dir) / "megatron"
        report["helpers"] = _helpers(Path(megatron_dir))
        report["checkout_writable"] = {str(checkout / sub): _writable(checkout / sub)
                                       for sub in ("data", "fused_kernels")}
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.fork_probe", description=__doc__.split("\n")[0])
    parser.add_argument("--data-folder", action="append", default=[], help="a folder the fork writes index maps to")
    args = parser.parse_args(argv)
    print(json.dumps(probe(args.data_folder)))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_command(main))
