"""Preflight sees the fork's run-time needs as the job will: through the site env, sourced as the job sources it.

``training.fork_runtime`` runs ``training.fork_probe`` under ``bash -c 'set -euo pipefail; source SITE_ENV; ...'``
(the job script's own preamble) and turns its report into findings. The stand-in checkout and site env come
from ``tests/fork_stand_in.py``; the apex stand-ins are ``tests/fork_shims``' (as on a CPU test machine).
"""
import os

from tests.conftest import REPO_ROOT
from tests.fork_stand_in import site_env_text, stand_in_checkout
from training.fork_runtime import check_fork_argv, run_probe, runtime_findings

ENV = {"PATH": os.environ["PATH"]}


def test_the_probe_sees_the_jobs_megatron_dir_apex_and_helper(tmp_path):
    fork = stand_in_checkout(tmp_path / "fork")
    site = tmp_path / "site.env"
    site.write_text(site_env_text(fork))
    report, problem = run_probe(str(site), [str(tmp_path)], {**ENV, "MEGATRON_DIR": str(tmp_path / "elsewhere")})
    assert problem is None
    assert report["megatron_dir"] == str(fork)  # the site env's, which the job sources after inheriting the other
    assert report["imports"] == {"apex": None, "amp_C": None, "fused_mix_prec_layer_norm_cuda": None}
    assert report["helpers"]["built"] and report["writable"] == {str(tmp_path): True}
    assert report["checkout_writable"] == {str(fork / "megatron" / "data"): True,
                                           str(fork / "megatron" / "fused_kernels"): True}
    assert runtime_findings(report, str(site)) == []
    # a site env that sets no MEGATRON_DIR: the job inherits the submitting shell's
    site.write_text(site_env_text(fork).replace(f"export MEGATRON_DIR={fork}\n", ""))
    report, _ = run_probe(str(site), [], {**ENV, "MEGATRON_DIR": str(tmp_path / "inherited")})
    assert report["megatron_dir"] == str(tmp_path / "inherited")


def test_without_apex_preflight_names_what_to_install(tmp_path):
    fork = stand_in_checkout(tmp_path / "fork")
    site = tmp_path / "site.env"
    site.write_text(site_env_text(fork, PYTHONPATH=str(REPO_ROOT)))  # no apex stand-ins on the path
    report, problem = run_probe(str(site), [], ENV)
    messages = [f.message for f in runtime_findings(report, str(site)) if f.error]
    assert problem is None and len(messages) == 3
    assert "cannot import apex (ModuleNotFoundError: No module named 'apex')" in messages[0]
    assert all("install NVIDIA apex with its C++ and CUDA extensions" in m for m in messages)


def test_a_failing_site_env_or_one_without_the_toolkit_is_an_error(tmp_path):
    fork = stand_in_checkout(tmp_path / "fork")
    site = tmp_path / "site.env"
    site.write_text(site_env_text(fork) + "module load cuda/12.1\n")  # no such command here: the job would stop
    report, problem = run_probe(str(site), [], ENV)
    assert report is None and f"sourcing {site} and running 'python -m training.fork_probe'" in problem
    assert "module: command not found" in problem
    other = tmp_path / "other-python"  # a site env whose `python` is one without the toolkit
    other.mkdir()
    (other / "python").write_text("#!/bin/sh\necho \"$0: No module named training\" >&2\nexit 1\n")
    (other / "python").chmod(0o755)
    site.write_text(site_env_text(fork) + f"export PATH={other}:$PATH\n")
    report, problem = run_probe(str(site), [], ENV)
    assert report is None and "No module named training" in problem and "activate its venv there" in problem
    report, problem = run_probe(str(tmp_path / "missing.env"), [], ENV)
    assert "the site env file is missing" in problem


def test_runtime_findings_name_each_missing_piece():
    report = {"python": "/venv/bin/python", "megatron_dir": "/fork",
              "imports": {"apex": None, "amp_C": None, "fused_mix_prec_layer_norm_cuda": None},
              "helpers": {"built": False, "make": "/usr/bin/make", "compiler": None, "pybind11": None,
                          "python3_config": ".cpython-311-x86_64-linux-gnu.so",
                          "extension_suffix": ".cpython-311-x86_64-linux-gnu.so"},
              "writable": {"/data": False}, "checkout_writable": {"/fork/megatron/fused_kernels": False}}
    messages = [f.message for f in runtime_findings(report, "site.env")]
    assert len(messages) == 3
    assert "lacks a C++ compiler (g++ or $CXX), pybind11 (python3 -m pybind11)" in messages[0]
    assert "make -C /fork/megatron/data" in messages[0]
    assert messages[1].startswith("/data is not writable for the job: the fork writes its index maps next to the data")
    assert "fused_kernels is not writable for the job: the fork builds its dataset helper and fused kernels" in \
        messages[2]
    report["helpers"].update(compiler="/usr/bin/g++", pybind11="-I/x",
                             python3_config=".cpython-310-x86_64-linux-gnu.so")
    report["writable"], report["checkout_writable"] = {}, {}
    assert "python3-config says extension suffix .cpython-310" in runtime_findings(report, "site.env")[0].message
    report["helpers"]["built"] = True  # nothing to build: make does nothing
    assert runtime_findings(report, "site.env") == []


def test_a_checkout_without_arguments_py_is_said_not_skipped(tmp_path):
    fork = stand_in_checkout(tmp_path / "fork")
    assert check_fork_argv(["--seed", "1"], (), str(fork)) == []
    (fork / "megatron" / "arguments.py").unlink()
    found = check_fork_argv(["--seed", "1"], (), str(fork))
    assert len(found) == 1 and found[0].error and "the argv's flags could not be checked" in found[0].message
