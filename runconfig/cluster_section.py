"""The ``cluster:`` section of the run config: the SLURM allocation ``python -m training.launch submit`` asks for.

``nodes`` x ``gpus_per_node`` processes are started (one ``torchrun`` per node, one worker per GPU);
``request_gpus: false`` asks SLURM for no GPUs (the local engine on CPU nodes, the test cluster) while still
starting ``gpus_per_node`` workers per node. Empty strings and zeros are left out of the ``sbatch`` command,
so the site's defaults apply. ``run_dir`` holds the job script, the resolved run config, each job's argv and
the logs (empty: ``<training.save>/slurm``). ``site_env`` is the git-ignored shell file the job sources
first (``MEGATRON_DIR``, modules, the virtualenv, NCCL variables; see ``training/site.env.example``).

The ``preprocess_*`` and ``merge_*`` keys size the CPU-only jobs of a sharded preprocess
(``python -m dataset.launch submit``: one array task per shard, then the merge); they share ``partition``,
``account``, ``qos`` and ``site_env`` (sourced first when the file exists) with the training job.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from runconfig.value_rules import check_values

# SLURM's --time forms: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS
_TIME = re.compile(r"^(\d+-)?\d+(:\d{1,2}){0,2}$")
_MEM = re.compile(r"^\d+[KMGT]?$")  # sbatch --mem: a number of megabytes, or with a unit


@dataclass(frozen=True)
class ClusterConfig:
    """One SLURM job: where it runs, how big, how long."""

    nodes: int = 1
    gpus_per_node: int = 8
    request_gpus: bool = True
    partition: str = ""
    account: str = ""
    qos: str = ""
    time: str | int = "24:00:00"  # an int only reaches here from unquoted YAML, and is refused
    job_name: str = "codeft-finetune"
    cpus_per_task: int = 0  # per node (one task per node); 0 = the site's default
    mem: str = ""  # per node, as sbatch writes it (e.g. 480G, 0 = all); empty = the site's default
    constraint: str = ""
    exclusive: bool = True
    rdzv_port: int = 29500  # torchrun's c10d rendezvous port on the first node of the allocation
    run_dir: str = ""
    site_env: str = "site.env"
    sbatch_args: tuple[str, ...] = ()  # further sbatch options, passed as they are (e.g. ["--mail-type=END"])
    preprocess_cpus_per_task: int = 8  # one shard task (its tokenizer workers)
    preprocess_mem: str = "32G"
    preprocess_time: str | int = "12:00:00"
    preprocess_max_parallel: int = 0  # at most this many shard tasks at once (--array=...%K); 0 = no limit
    merge_mem: str = "4G"
    merge_time: str | int = "04:00:00"

    def __post_init__(self) -> None:
        check_values(self)  # each number's range (nodes, ports, CPUs): runconfig.value_rules
        for name in ("time", "preprocess_time", "merge_time"):
            value = getattr(self, name)
            if isinstance(value, int):  # YAML 1.1 reads 24:00:00 as 86400 and 30 as 30: neither is meant
                raise ValueError(f"{name} {value!r}: quote the time limit in the YAML ({name}: '24:00:00'), or it"
                                 " is read as a number")
            if not _TIME.match(value):
                raise ValueError(f"{name} {value!r} is not a SLURM time limit; write e.g. 24:00:00 or 2-00:00:00")
        for name in ("preprocess_mem", "merge_mem"):
            if not _MEM.match(getattr(self, name)):
                raise ValueError(f"{name} {getattr(self, name)!r} is not a SLURM memory size; write e.g. 32G")
        for arg in self.sbatch_args:
            if not arg.startswith("--"):
                raise ValueError(f"sbatch_args item {arg!r}: write each option whole, e.g. --mail-type=END")
