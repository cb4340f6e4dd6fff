"""Preflight sees the fork's run-time needs as the job will: through the site env, sourced as the job sources it.

``training.cluster.fork_runtime`` runs ``training.fork_probe`` under ``bash -c 'set -euo pipefail; source SITE_ENV; ...'``
(the job script's own preamble) and turns its report into findings. The stand-in checkout and site env come
from ``tests/fork_stand_in.py``; the apex stand-ins are ``tests/fork_shims``' (as on a CPU test machine).
"""
import os

from tests.conftest import REPO_ROOT
from tests.fork_stand_in import site_env_text, stand_in_checkout
from training.cluster.fork_probe import _cuda_toolchain, _first_line, _helpers
from training.cluster.fork_runtime import check_fork_argv, run_probe, runtime_findings

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
    from torch.utils import cpp_extension

    assert report["cuda"]["cuda_home"] == cpp_extension.CUDA_HOME  # the job's torch's (None: a CPU build)
    assert report["cuda"]["ninja"] == _first_line(["ninja", "--version"])
    assert runtime_findings(report, str(site), False) == []
    # a site env that sets no MEGATRON_DIR: the job inherits the submitting shell's
    site.write_text(site_env_text(fork).replace(f"export MEGATRON_DIR={fork}\n", ""))
    report, _ = run_probe(str(site), [], {**ENV, "MEGATRON_DIR": str(tmp_path / "inherited")})
    assert report["megatron_dir"] == str(tmp_path / "inherited")


def test_without_apex_preflight_names_what_to_install(tmp_path):
    fork = stand_in_checkout(tmp_path / "fork")
    site = tmp_path / "site.env"
    site.write_text(site_env_text(fork, PYTHONPATH=str(REPO_ROOT)))  # no apex stand-ins on the path
    report, problem = run_probe(str(site), [], ENV)
    messages = [f.message for f in runtime_findings(report, str(site), False) if f.error]
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
    messages = [f.message for f in runtime_findings(report, "site.env", False)]
    assert len(messages) == 3
    assert "lacks a C++ compiler (g++ or $CXX), pybind11 (python3 -m pybind11)" in messages[0]
    assert "make -C /fork/megatron/data" in messages[0]
    assert messages[1].startswith("/data is not writable for the job: the fork writes its index maps next to the data")
    assert "fused_kernels is not writable for the job: the fork builds its dataset helper and fused kernels" in \
        messages[2]
    report["helpers"].update(compiler="/usr/bin/g++", pybind11="-I/x",
                             python3_config=".cpython-310-x86_64-linux-gnu.so")
    report["writable"], report["checkout_writable"] = {}, {}
    assert "python3-config says extension suffix .cpython-310" in runtime_findings(report, "site.env", False)[0].message
    report["helpers"]["built"] = True  # nothing to build: make does nothing
    assert runtime_findings(report, "site.env", False) == []


def _script(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{text}\n")
    path.chmod(0o755)


def test_the_probe_reads_nvcc_under_torchs_cuda_home_and_ninja(tmp_path, monkeypatch):
    from torch.utils import cpp_extension

    cuda = tmp_path / "cuda"  # nvcc -V's own words (CUDA 12.1)
    _script(cuda / "bin" / "nvcc", "echo 'nvcc: NVIDIA (R) Cuda compiler driver'; echo 'Cuda compilation tools,"
            " release 12.1, V12.1.105'")
    _script(tmp_path / "bin" / "ninja", "echo 1.11.1")
    monkeypatch.setattr(cpp_extension, "CUDA_HOME", str(cuda))  # what a CUDA build of torch finds
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    assert _cuda_toolchain() == {"cuda_home": str(cuda), "nvcc": "Cuda compilation tools, release 12.1, V12.1.105",
                                 "ninja": "1.11.1"}
    _script(cuda / "bin" / "nvcc", "exit 1")
    (tmp_path / "bin" / "ninja").unlink()
    monkeypatch.setenv("PATH", "/nonexistent")
    assert _cuda_toolchain() == {"cuda_home": str(cuda), "nvcc": None, "ninja": None}


def test_on_gpus_preflight_needs_cuda_home_nvcc_and_ninja():
    report = {"python": "/venv/bin/python", "megatron_dir": "/fork",
              "imports": {"apex": None, "amp_C": None, "fused_mix_prec_layer_norm_cuda": None},
              "cuda": {"cuda_home": None, "nvcc": None, "ninja": "1.11.1"}}
    assert runtime_findings(report, "site.env", False) == []  # CPU nodes: the run asks for no GPU
    messages = [f.message for f in runtime_findings(report, "site.env", True)]
    assert len(messages) == 1 and "torch.utils.cpp_extension.CUDA_HOME is None" in messages[0] and \
        "runs CUDA_HOME/bin/nvcc -V at every start" in messages[0] and "export CUDA_HOME=" in messages[0]
    report["cuda"] = {"cuda_home": "/opt/cuda", "nvcc": None, "ninja": None}
    messages = [f.message for f in runtime_findings(report, "site.env", True)]
    assert len(messages) == 2 and messages[0].startswith("/opt/cuda/bin/nvcc -V fails in the job's environment")
    assert messages[1].startswith("ninja is not on the job's PATH") and "pip install ninja" in messages[1]
    report["cuda"] = {"cuda_home": "/opt/cuda", "nvcc": "Cuda compilation tools, release 12.1", "ninja": "1.11.1"}
    assert runtime_findings(report, "site.env", True) == []


def test_only_the_helper_of_the_jobs_python_counts_as_built(tmp_path):
    import sysconfig

    fork = stand_in_checkout(tmp_path / "fork")
    data = fork / "megatron" / "data"
    assert _helpers(fork)["built"]
    mine = data / f"helpers{sysconfig.get_config_var('EXT_SUFFIX')}"
    mine.rename(data / "helpers.cpython-39-x86_64-linux-gnu.so")  # another python's build: the fork's make runs
    assert not _helpers(fork)["built"]


def test_a_checkout_without_arguments_py_is_said_not_skipped(tmp_path):
    fork = stand_in_checkout(tmp_path / "fork")
    assert check_fork_argv(["--seed", "1"], (), str(fork)) == []
    (fork / "megatron" / "arguments.py").unlink()
    found = check_fork_argv(["--seed", "1"], (), str(fork))
    assert len(found) == 1 and found[0].error and "the argv's flags could not be checked" in found[0].message
