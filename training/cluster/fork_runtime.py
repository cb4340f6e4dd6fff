"""Preflight's check of the fork's run-time needs, seen through the job's own environment.

The job (``finetune_starcoderbase.sh``) runs ``set -euo pipefail``, sources ``cluster.site_env``, then runs
``python -m training.launch`` and the fork with the ``python``, ``PATH`` and ``MEGATRON_DIR`` the file leaves.
Preflight does the same (``probe_argv``: the same shell options, the same file, the same working folder), runs
``training.fork_probe`` there and turns its report into findings (``runtime_findings``), so a missing piece is
an error with its fix before the queue wait, not a failed job after it:

* the site env sources, and its ``python`` runs the toolkit (the job runs ``python -m training.launch`` first);
* apex with its CUDA extensions (``apex.optimizers``, ``amp_C``, ``fused_mix_prec_layer_norm_cuda``) imports;
* the fork's dataset helper is built, or ``make`` can build it (``make``, a C++ compiler, ``pybind11`` and
  ``python3-config`` for the same Python), as the fork runs ``make -C megatron/data`` at every start;
* the data folders are writable (the fork writes its index maps next to the data), and so are the checkout's
  ``megatron/data`` (the helper) and ``megatron/fused_kernels`` (its kernels are built there at start);
* on GPUs (``cluster.request_gpus``): the CUDA toolkit and ninja the fork's ``fused_kernels.load`` uses at every
  start (it runs ``CUDA_HOME/bin/nvcc -V`` with torch's ``cpp_extension.CUDA_HOME`` and builds its softmax kernels
  with ``cpp_extension.load``, which needs ninja).

    report, problem = run_probe("site.env", ["/data"], os.environ)    # the probe's JSON, or why it failed
"""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any, Mapping, Sequence

from dataset.splitting.split_files import SplitFileError, parse_split_file, resolve_prefix
from runconfig.model_presets import ModelShape
from runconfig.run_config import RunConfig
from training.cluster.megatron_argv import FINETUNE_SCRIPT, fork_script
from training.cluster.preflight import Finding
from training.cluster.pretrain_argv import PRETRAIN_BRANCH, PRETRAIN_SCRIPT
from training.resume.recorded_args import RecordedCheckpoint

# the job script's preamble, then the probe instead of the job: same options, same file, `python` from its PATH
PROBE_SCRIPT = 'set -euo pipefail\nsource "$1"\nshift\nexec python -m training.fork_probe "$@"\n'
APEX_FIX = ("install NVIDIA apex with its C++ and CUDA extensions into that environment (pip install -v"
            " --no-build-isolation --config-settings --build-option=--cpp_ext --config-settings"
            " --build-option=--cuda_ext git+https://github.com/NVIDIA/apex)")


def probe_argv(site_env: str, data_folders: Sequence[str]) -> list[str]:
    """``bash -c PROBE_SCRIPT`` with the site env file and the probe's flags as arguments (never interpolated)."""
    flags = [item for folder in data_folders for item in ("--data-folder", folder)]
    return ["bash", "-c", PROBE_SCRIPT, "fork-probe", str(Path(site_env).resolve()), *flags]


def run_probe(site_env: str, data_folders: Sequence[str],
              environ: Mapping[str, str]) -> tuple[dict[str, Any] | None, str | None]:
    """(the probe's report, None), or (None, why it could not run in the job's environment)."""
    if not Path(site_env).is_file():
        return None, (f"{site_env}: the site env file is missing (the job sources it first); copy"
                      " training/site.env.example there and edit it, or set cluster.site_env")
    try:
        done = subprocess.run(probe_argv(site_env, data_folders), capture_output=True, text=True, timeout=300,
                              env=dict(environ), check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"could not run bash to source {site_env} as the job does: {exc}"
    if done.returncode == 0:
        try:
            return json.loads(done.stdout.strip().splitlines()[-1]), None
        except (json.JSONDecodeError, IndexError):
            pass
    last = " | ".join(done.stderr.strip().splitlines()[-3:]) or f"exit status {done.returncode}"
    return None, (f"sourcing {site_env} and running 'python -m training.fork_probe' as the job runs 'python -m"
                  f" training.launch' failed ({last}); the site env must leave a python that has this toolkit"
                  " (activate its venv there) and submit must run from the toolkit's folder")


def runtime_findings(report: Mapping[str, Any], site_env: str, gpus: bool) -> list[Finding]:
    """Errors for every run-time need of the fork the probe found missing (pure); ``gpus``: the job gets GPUs."""
    found = []
    python = f"{report['python']} (the job's python after sourcing {site_env})"
    if gpus and "cuda" in report:
        found += _cuda_findings(report["cuda"], python)
    for name, error in report["imports"].items():
        if error:
            found.append(Finding(True, f"{python} cannot import {name} ({error}); the fork's optimizer and layer"
                                 f" norm need it: {APEX_FIX}"))
    helpers = report.get("helpers")
    if helpers and not helpers["built"]:
        needs = (("make", helpers["make"]), ("a C++ compiler (g++ or $CXX)", helpers["compiler"]),
                 ("pybind11 (python3 -m pybind11)", helpers["pybind11"]), ("python3-config", helpers["python3_config"]))
        missing = [what for what, have in needs if not have]
        if missing:
            found.append(Finding(True, f"the fork builds its dataset helper with make at start"
                                 f" ({report['megatron_dir']}/megatron/data/Makefile) and the job's environment lacks"
                                 f" {', '.join(missing)}; install them there (pip install pybind11; the distribution's"
                                 " make, g++ and python3-dev), or build it once where they are: make -C"
                                 f" {report['megatron_dir']}/megatron/data"))
        elif helpers["python3_config"] != helpers["extension_suffix"]:
            found.append(Finding(True, f"python3-config says extension suffix {helpers['python3_config']}, the job's"
                                 f" python loads {helpers['extension_suffix']}: the fork's make would build a helper"
                                 " that python cannot import; put the matching python3-config first on the PATH"))
    for key, what in (("writable", "the fork writes its index maps next to the data"),
                      ("checkout_writable", "the fork builds its dataset helper and fused kernels there at start")):
        for folder, writable in report.get(key, {}).items():
            if not writable:
                found.append(Finding(True, f"{folder} is not writable for the job: {what}; make it writable (or"
                                     " use a copy that is)"))
    return found


def _cuda_findings(cuda: Mapping[str, Any], python: str) -> list[Finding]:
    """The fork's ``fused_kernels.load`` at every start: ``CUDA_HOME/bin/nvcc -V``, then ninja builds."""
    found = []
    if not cuda.get("cuda_home"):
        found.append(Finding(True, f"{python}: torch.utils.cpp_extension.CUDA_HOME is None (a CPU build of torch, or"
                             " no CUDA toolkit found): the fork runs CUDA_HOME/bin/nvcc -V at every start and dies;"
                             " install a CUDA build of torch and load the CUDA toolkit in the site env (export"
                             " CUDA_HOME=/path/to/cuda, or put its bin/nvcc on the PATH)"))
    elif not cuda.get("nvcc"):
        found.append(Finding(True, f"{cuda['cuda_home']}/bin/nvcc -V fails in the job's environment (CUDA_HOME from"
                             f" {python}): the fork reads the CUDA version from it at every start; point CUDA_HOME"
                             " at a whole CUDA toolkit in the site env"))
    if not cuda.get("ninja"):
        found.append(Finding(True, "ninja is not on the job's PATH: the fork builds its fused kernels with"
                             " torch.utils.cpp_extension.load at every start, which needs it; pip install ninja into"
                             " that environment (or the distribution's ninja-build)"))
    return found


def megatron_dir(environ: Mapping[str, str], site_env: str) -> str:
    """``MEGATRON_DIR`` as the job sees it when the site env cannot be run: a plain ``MEGATRON_DIR=...`` line of the
    site env file (sourced, it wins), else the environment's (the job inherits it)."""
    value = environ.get("MEGATRON_DIR", "")
    if Path(site_env).is_file():
        for line in Path(site_env).read_text(encoding="utf-8").splitlines():
            match = re.match(r"""^\s*(?:export\s+)?MEGATRON_DIR=["']?([^"'$`]*)["']?\s*$""", line)
            if match:
                value = match.group(1)
    return value


def check_megatron_dir(value: str, site_env: str, script: str = FINETUNE_SCRIPT) -> list[Finding]:
    """``value`` (``MEGATRON_DIR`` as the job sees it) is a checkout of the fork's branch that runs ``script``."""
    branch = PRETRAIN_BRANCH if script == PRETRAIN_SCRIPT else "mtf"
    if not value:
        return [Finding(True, f"MEGATRON_DIR is not set (environment or {site_env}); point it at a checkout of"
                        f" the BigCode fork's {branch} branch (see training/site.env.example)")]
    if not (Path(value) / script).is_file():
        return [Finding(True, f"MEGATRON_DIR={value} holds no {script}; check out the fork's {branch} branch there")]
    tokenizer_py = Path(value) / "megatron" / "tokenizer" / "tokenizer.py"
    if script == PRETRAIN_SCRIPT and tokenizer_py.is_file() and not re.search(
            r"^FIM_PAD\s*=", tokenizer_py.read_text(encoding="utf-8"), re.M):
        # the mtf branch: its gpt_dataset.py fails at import (no FIM_PAD) and its FIM names are hyphenated
        return [Finding(True, f"MEGATRON_DIR={value} cannot build the GPT dataset ({tokenizer_py} defines no"
                        f" FIM_PAD); check out the fork's {PRETRAIN_BRANCH} branch there for training.mode=pretrain")]
    return []


def check_fork_argv(argv: list[str], extra_args: tuple[str, ...], fork_dir: str) -> list[Finding]:
    """The argv against the flags of the fork the job will run, and ``extra_args`` against the rest."""
    from training.cluster.fork_flags import argv_problems, extract_flags

    found = []
    given = [a for a in extra_args if a.startswith("--")]
    built = set(a for a in argv[:len(argv) - len(extra_args)] if a.startswith("--"))
    for flag in given:
        if flag in built:
            found.append(Finding(True, f"training.extra_args repeats {flag}, which the run config already sets;"
                                 " change the training: key instead (one value in one place)"))
        if flag in ("--data-path", "--split"):
            found.append(Finding(True, f"training.extra_args has {flag}: the fork refuses it next to the weighted"
                                 " split files (train_split_file / valid_split_file)"))
    arguments = Path(fork_dir) / "megatron" / "arguments.py"
    if arguments.is_file():
        flags = extract_flags(arguments.read_text(encoding="utf-8"))
        found += [Finding(True, f"{arguments} would reject the argv: {p}") for p in argv_problems(argv, flags)]
    elif fork_dir:
        found.append(Finding(True, f"{arguments} does not exist, so the argv's flags could not be checked: MEGATRON_DIR"
                             f"={fork_dir} is not a whole checkout of the fork; check out its branch there"))
    return found


def _data_folders(cfg: Any) -> list[str]:
    """The folders the fork writes index maps into: those of the data it reads."""
    if cfg.mode == "pretrain":
        return [str(Path(cfg.pretrain.data_path).absolute().parent)] if cfg.pretrain.data_path else []
    folders = set()
    for role, path in (("train", cfg.train_split_file), ("valid", cfg.valid_split_file)):
        try:
            groups = parse_split_file(path, role) if path else []
        except (SplitFileError, OSError):
            continue  # check_splits reports it
        folders.update(str(resolve_prefix(d.prefix, path).parent) for g in groups for d in g.datasets)
    return sorted(folders)


def check_fork_runtime(run: RunConfig, environ: Mapping[str, str], start: Any, recorded: RecordedCheckpoint | None,
                       shape: ModelShape | None) -> list[Finding]:
    """The fork in the job's environment (``training.cluster.fork_runtime``), its argv, and what the job will do."""
    from training.cluster.fork_job import plan_fork_job

    cfg, cluster = run.training, run.cluster
    found: list[Finding] = []
    report, problem = run_probe(cluster.site_env, _data_folders(cfg), environ)
    if problem:
        found.append(Finding(True, problem))
    fork_dir = report["megatron_dir"] if report else megatron_dir(environ, cluster.site_env)
    found += check_megatron_dir(fork_dir, cluster.site_env, fork_script(cfg))
    if report:
        found += runtime_findings(report, cluster.site_env, cluster.request_gpus)
    if cfg.dtype == "auto":
        where = "the GPUs" if cluster.request_gpus else "CPU nodes (cluster.request_gpus: false)"
        found.append(Finding(False, f"training.dtype auto: the fork trains in {cfg.compute_dtype(cluster.request_gpus)}"
                             f" on {where}, as the local engine does on the same hardware", note=True))
    if shape is not None and start is not None:
        try:
            job = plan_fork_job(run, start, recorded, shape)
        except ValueError as exc:  # e.g. a save folder from another run; the reason names the values
            found.append(Finding(True, str(exc)))
        else:
            found += check_fork_argv(list(job.argv), cfg.extra_args, fork_dir)
            if job.schedule is not None:
                found += [Finding(False, n, note=True) for n in job.schedule.notes]
                found += [Finding(False, w) for w in job.schedule.warnings]
    return found
