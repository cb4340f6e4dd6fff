"""``python -m tests.fsdp_start_driver MODE RECORD OVERRIDES...`` under torchrun: ``training.finetune`` with, per
rank, a record (``RECORD.rankN.json``) of the weight files it opened, of where its parameters were when the
model was sharded and of its peak RSS up to then (for tests/test_fsdp_start.py; the RSS is for a measurement by
hand on a larger model, the tiny test model is lost in the noise).

MODE ``broadcast`` is the engine as it is (rank 0 reads, the others start on the meta device); ``every_rank``
puts back the former start, every process loading the whole model before sharding, the reference the losses
are compared with. Weight files are seen through the two ways they are read: Python's ``open`` (audit events:
``torch.load``) and ``safetensors.safe_open`` (Rust opens the file, so it is wrapped here, before anything
imports it).
"""
from __future__ import annotations

import json
import os
import resource
import sys
from pathlib import Path

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")


def main(argv: list[str]) -> int:
    mode, record, overrides = argv[0], Path(argv[1]), argv[2:]
    opened: list[str] = []

    def audit(event: str, args: tuple) -> None:
        if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)) and \
                os.fsdecode(args[0]).endswith(WEIGHT_SUFFIXES):
            opened.append(os.fsdecode(args[0]))

    sys.addaudithook(audit)
    import safetensors

    safe_open = safetensors.safe_open

    def traced_safe_open(path, *args, **kwargs):
        opened.append(os.fsdecode(path))
        return safe_open(path, *args, **kwargs)

    safetensors.safe_open = traced_safe_open  # before safetensors.torch and transformers bind the name
    from training.local import engine, fsdp_start
    from training.local.finetune import main as finetune
    from training.local.model_init import load_start_model

    devices: list[list[str]] = []
    peak: list[float] = []
    wrap_model = engine.wrap_model

    def recorded_wrap(model, *args, **kwargs):
        devices.append(sorted({p.device.type for p in model.parameters()}))
        peak.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9)  # up to the sharding
        return wrap_model(model, *args, **kwargs)

    engine.wrap_model = recorded_wrap
    if mode == "every_rank":
        fsdp_start.start_model = lambda path, env, sharded: (*load_start_model(path), None)
    code = finetune(overrides)
    rank = os.environ.get("RANK", "0")
    facts = {"opened": opened, "devices": devices, "peak_rss_gb_at_sharding": peak}
    record.with_name(f"{record.name}.rank{rank}.json").write_text(json.dumps(facts))
    return code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
