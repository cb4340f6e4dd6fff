"""What the fork will find at run time, seen from inside the job's environment (the site env sourced).

The code of ``python -m training.fork_probe``; how to run it and what it does: the docstring of its entry point
``training/fork_probe.py``.
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


def command_stdout(argv: list[str]) -> str | None:
    """What ``argv`` printed, or None when it is not installed, cannot run, fails or hangs (a minute at most).
    Standard library only, as the rest of the probe (``training.cluster.run_status`` asks SLURM with it too)."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def _first_line(argv: list[str]) -> str | None:
    lines = (command_stdout(argv) or "").strip().splitlines()
    return lines[0] if lines else None


def _helpers(megatron_dir: Path) -> dict[str, Any]:
    data = megatron_dir / "megatron" / "data"
    source = data / "helpers.cpp"
    # the file this python imports (the Makefile names it with python3-config's suffix), not another python's
    built = data / f"helpers{sysconfig.get_config_var('EXT_SUFFIX')}"
    fresh = built.is_file() and source.is_file() and built.stat().st_mtime >= source.stat().st_mtime
    return {"built": fresh, "make": shutil.which("make"), "compiler": shutil.which(os.environ.get("CXX", "g++")),
            "pybind11": _first_line(["python3", "-m", "pybind11", "--includes"]),
            "python3_config": _first_line(["python3-config", "--extension-suffix"]),
            "extension_suffix": sysconfig.get_config_var("EXT_SUFFIX")}


def _cuda_toolchain() -> dict[str, Any]:
    """What the fork's ``fused_kernels.load`` uses at every start: ``torch.utils.cpp_extension.CUDA_HOME`` (None
    for a CPU build of torch, or when torch finds no toolkit), the ``release`` line of ``CUDA_HOME/bin/nvcc -V``
    (it reads the CUDA version from it), and ``ninja --version`` (``cpp_extension.load`` builds with ninja)."""
    try:
        from torch.utils import cpp_extension

        cuda_home = cpp_extension.CUDA_HOME
    except Exception:  # noqa: BLE001 - no torch, or one that fails to import: no CUDA_HOME for the fork either
        cuda_home = None
    nvcc = None
    if cuda_home:
        out = command_stdout([str(Path(cuda_home) / "bin" / "nvcc"), "-V"]) or ""
        nvcc = next((line.strip() for line in out.splitlines() if "release" in line), None)
    return {"cuda_home": cuda_home, "nvcc": nvcc, "ninja": _first_line(["ninja", "--version"])}


def _writable(folder: Path) -> bool:
    return folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)


def probe(data_folders: list[str]) -> dict[str, Any]:
    megatron_dir = os.environ.get("MEGATRON_DIR", "")
    report: dict[str, Any] = {"python": sys.executable, "megatron_dir": megatron_dir,
                              "imports": {name: _import_error(name) for name in FORK_EXTENSIONS}}
    report["writable"] = {folder: _writable(Path(folder)) for folder in data_folders}
    report["cuda"] = _cuda_toolchain()
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
