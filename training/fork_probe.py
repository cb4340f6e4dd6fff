"""What the fork will find at run time, seen from inside the job's environment (the site env sourced).

    python -m training.fork_probe [--data-folder F ...]      # one JSON object on stdout

``training.cluster.fork_runtime`` runs this with ``cluster.site_env`` sourced, exactly as ``finetune_starcoderbase.sh``
prepares the job (same shell options, same working folder), and turns the answer into preflight findings. It
reports, without changing anything:

* ``python``, ``megatron_dir``: the interpreter the job's ``python`` is, and ``MEGATRON_DIR`` as the job sees it
  (the site env's, else the one the job inherits from the shell that submits it);
* ``imports``: for ``apex`` (its ``FusedAdam``), ``amp_C`` and ``fused_mix_prec_layer_norm_cuda`` (apex's CUDA
  extensions the fork imports), null when importable, else the error;
* ``helpers``: the fork's dataset helper (``megatron/data/helpers{EXT_SUFFIX}`` of this python, built by ``make``
  at every start): whether it is built and newer than ``helpers.cpp``; else what ``make`` needs: ``make``, a C++
  compiler (``$CXX`` or ``g++``), ``python3 -m pybind11 --includes`` and ``python3-config`` (the Makefile's own
  commands);
* ``writable``: each data folder (the fork writes its index maps next to the data); ``checkout_writable``: the
  checkout's ``megatron/data`` and ``megatron/fused_kernels`` (it builds its helper and kernels there);
* ``cuda``: what the fork's ``fused_kernels.load`` uses at every start: ``cuda_home`` (torch's
  ``cpp_extension.CUDA_HOME``), ``nvcc`` (the release line of ``CUDA_HOME/bin/nvcc -V``) and ``ninja``
  (``ninja --version``), each null when missing.

The code: ``training.cluster.fork_probe`` (``training/cluster/fork_probe.py``); this module is the command's entry point only.
"""
from guardrails.command_errors import run_command
from training.cluster.fork_probe import main

if __name__ == "__main__":
    raise SystemExit(run_command(main))
