"""A stand-in checkout of the fork and a site env for it, for tests of the cluster path without the fork.

    fork = stand_in_checkout(tmp / "Megatron-LM")          # finetune_mtf.py (tests/fork_stand_in_script.py), the
                                                            # fork's megatron/arguments.py flags, a built helper
    site.write_text(site_env_text(fork))                    # the job's environment: this venv, the toolkit, the
                                                            # apex stand-ins of tests/fork_shims, MEGATRON_DIR

The checkout holds what preflight looks at (``training.fork_runtime``): ``finetune_mtf.py``, a
``megatron/arguments.py`` declaring the ``mtf`` branch's flags (from ``fixtures/fork_flags``), a dataset helper
already built (newer than ``helpers.cpp``, so the fork's ``make`` has nothing to do) and the writable
``megatron/fused_kernels``.
"""
from __future__ import annotations

import shlex
import shutil
import sys
import sysconfig
from pathlib import Path

from tests.conftest import REPO_ROOT
from tests.fork_flag_check import fork_flags

STAND_IN_SCRIPT = Path(__file__).parent / "fork_stand_in_script.py"
FORK_SHIMS = Path(__file__).parent / "fork_shims"


def fork_arguments_source(drop: tuple[str, ...] = ()) -> str:
    """An ``arguments.py`` defining the ``mtf`` branch's flags (rebuilt from the fixture), less those in ``drop``."""
    lines = ["def f(group):"]
    for flag, spec in fork_flags("mtf_arguments_flags.json").items():
        if flag in drop:
            continue
        extra = "" if spec["takes_value"] else ", action='store_true'"
        extra += f", choices={spec['choices']!r}" if "choices" in spec else ""
        extra += f", nargs={spec['nargs']!r}" if "nargs" in spec else ""
        lines.append(f"    group.add_argument({flag!r}{extra})")
    return "\n".join(lines) + "\n"


def stand_in_checkout(folder: Path) -> Path:
    (folder / "megatron" / "data").mkdir(parents=True)
    (folder / "megatron" / "fused_kernels").mkdir()
    shutil.copyfile(STAND_IN_SCRIPT, folder / "finetune_mtf.py")
    (folder / "megatron" / "arguments.py").write_text(fork_arguments_source())
    (folder / "megatron" / "data" / "helpers.cpp").write_text("// the fork's dataset helper\n")
    (folder / "megatron" / "data" / f"helpers{sysconfig.get_config_var('EXT_SUFFIX')}").write_bytes(b"")
    return folder


def site_env_text(megatron_dir: Path, **exports: str) -> str:
    """Shell lines a site env file holds for a job on this machine (``exports``: further variables)."""
    values = {"PYTHONPATH": f"{REPO_ROOT}:{FORK_SHIMS}",
              "MEGATRON_DIR": str(megatron_dir), **exports}
    lines = [f"export {k}={shlex.quote(v)}" for k, v in values.items() if k != "PATH"]
    lines.insert(0, f'export PATH={shlex.quote(str(Path(sys.executable).parent))}:"$PATH"')
    return "\n".join(lines + ["export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false"
                              " OMP_NUM_THREADS=1"]) + "\n"
