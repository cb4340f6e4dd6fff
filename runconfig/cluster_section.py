"""The ``cluster:`` section of the run config: the SLURM allocation ``python -m training.launch submit`` asks for.

``nodes`` x ``gpus_per_node`` processes are started (one ``torchrun`` per node, one worker per GPU);
``request_gpus: false`` asks SLURM for no GPUs (the local engine on CPU nodes, the test cluster) while still
starting ``gpus_per_node`` workers per node. Empty strings and zeros are left out of the ``sbatch`` command,
so the site's defaults apply. ``run_dir`` holds the job script, the resolved run config, each job's argv and
the logs (empty: ``<training.save>/slurm``). ``site_env`` is the git-ignored shell file the job sources
first (``MEGATRON_DIR``, modules, the virtualenv, NCCL variables; see ``training/site.env.example``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

# SLURM's --time forms: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS
_TIME = re.compile(r"^(\d+-)?\d+(:\d{1,2}){0,2}$")


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

    def __post_init__(self) -> None:
        if self.nodes < 1 or self.gpus_per_node < 1:
            raise ValueError(f"nodes and gpus_per_node must be >= 1, got nodes={self.nodes}"
                             f" gpus_per_node={self.gpus_per_node}")
        if isinstance(self.time, int):  # YAML 1.1 reads 24:00:00 as 86400 and 30 as 30: neither is meant
            raise ValueError(f"time {self.time!r}: quote the time limit in the YAML (time: '24:00:00'), or it is"
                             " read as a number")
        if not _TIME.match(self.time):
            raise ValueError(f"time {self.time!r} is not a SLURM time limit; write e.g. 24:00:00 or 2-00:00:00")
        if not 0 < self.rdzv_port < 65536:
            raise ValueError(f"rdzv_port {self.rdzv_port} is not a TCP port (1-65535)")
        if self.cpus_per_task < 0:
            raise ValueError(f"cpus_per_task must be >= 0, got {self.cpus_per_task}")
        for arg in self.sbatch_args:
            if not arg.startswith("--"):
                raise ValueError(f"sbatch_args item {arg!r}: write each option whole, e.g. --mail-type=END")
