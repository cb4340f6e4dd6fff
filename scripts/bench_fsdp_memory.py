"""Peak memory per process of the local engine under FSDP2 vs DDP, on a Llama-shaped model, measured in one run.

Run::

    python scripts/bench_fsdp_memory.py [--processes 2] [--layers 8] [--hidden 512] [--heads 8] [--seq 128] \
        [--steps 3] [--threads 1]

Both sides train the same tiny random Llama (``training.model_init --family llama``; fp32 on the CPU, gloo)
for ``--steps`` iterations under ``torchrun --nproc_per_node N``, once with DDP and once with ``training.fsdp``
(one FSDP2 unit per decoder layer); each logs its peak memory (``peak_memory_gb_rank0`` in ``metrics.jsonl``: the
peak RSS on CPU, the CUDA allocator's peak on a GPU) before the final checkpoint is written. The baseline is
the peak RSS of a process that imported the engine and built nothing, measured here too, so the figures above
it are what the model, its gradients and AdamW's moments (and the activations) take. The model-state
expectation: DDP keeps 16 bytes per parameter in every process (weights, gradients, two moments), FSDP2 about
16 / N; ``model_state_gb_rank0`` counts what each process really holds, tensor by tensor. The processes run with
``MALLOC_MMAP_THRESHOLD_=65536`` (see ``_env``): with glibc's default the buffers FSDP2 gathers and frees layer by
layer stay in the heap and the peak RSS no longer shows what is live. On a GPU the CUDA allocator's peak is the
figure to read. Last line:
``ratio_fsdp_to_ddp=<float>`` (peak above the baseline, FSDP2 / DDP).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "fork"
BASELINE = ("import resource, torch, transformers, training.local.engine, training.local.hf_family.checkpoint;"
            " print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9)")


def _env(threads: int) -> dict[str, str]:
    # glibc's malloc raises its mmap threshold to the largest block freed so far, after which the unit-sized
    # buffers FSDP2 gathers and frees layer by layer stay in the heap and the RSS keeps their high-water mark; a
    # fixed threshold returns every large tensor to the system when it is freed, on both sides alike
    return dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
                OMP_NUM_THREADS=str(threads), PYTHONPATH=str(ROOT), MALLOC_MMAP_THRESHOLD_="65536")


def run(args: argparse.Namespace, base: Path, work: Path, fsdp: bool) -> tuple[float, float]:
    split = work / "train_data_paths.txt"
    split.write_text(f'"train: 1.0 0:1 {FIXTURES / "sample"}"\n')
    save = work / ("fsdp" if fsdp else "ddp")
    overrides = {"load": base, "save": save, "train_split_file": split, "tokenizer": FIXTURES / "tokenizer.json",
                 "seq_length": args.seq, "micro_batch_size": 1, "global_batch_size": args.processes,
                 "train_iters": args.steps, "lr": 1e-4, "save_interval": 10_000, "eval_interval": 10_000,
                 "tensorboard": False, "progress_bar": False, "cpu_threads": args.threads, "fsdp": str(fsdp).lower()}
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc_per_node",
            str(args.processes), "-m", "training.finetune", *[f"training.{k}={v}" for k, v in overrides.items()]]
    done = subprocess.run(argv, env=_env(args.threads), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{'FSDP2' if fsdp else 'DDP'} run failed:\n{done.stderr[-3000:]}")
    records = [json.loads(x) for x in (save / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["kind"] == "train"]
    return max(r["peak_memory_gb_rank0"] for r in steps), max(r["model_state_gb_rank0"] for r in steps)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from training.local.model_init import TinyModelSpec, write_tiny_hf_model

    with tempfile.TemporaryDirectory(prefix="bench_fsdp_") as tmp:
        work = Path(tmp)
        model = write_tiny_hf_model(FIXTURES / "tokenizer.json", work / "base", "llama",
                                    TinyModelSpec(args.layers, args.hidden, args.heads, 0, max(args.seq, 256), 0.0))
        params = sum(p.numel() for p in model.parameters())
        del model
        baseline = float(subprocess.run([sys.executable, "-c", BASELINE], env=_env(args.threads), check=True,
                                        capture_output=True, text=True).stdout.split()[-1])
        (ddp, ddp_state), (fsdp, fsdp_state) = (run(args, work / "base", work, fsdp=f) for f in (False, True))
    state = 16 * params / 1e9
    print(f"model=llama {args.layers}x{args.hidden} params={params / 1e6:.1f}M processes={args.processes}"
          f" seq={args.seq} device=cpu")
    print(f"baseline_peak_rss_gb={baseline:.3f} (a process that imported the engine)")
    print(f"ddp_peak_gb_per_process={ddp:.3f} above_baseline={ddp - baseline:.3f}"
          f" (model state expected {state:.3f})")
    print(f"fsdp2_peak_gb_per_process={fsdp:.3f} above_baseline={fsdp - baseline:.3f}"
          f" (model state expected {state / args.processes:.3f} + one gathered layer)")
    print(f"model_state_gb_per_process: ddp={ddp_state:.3f} fsdp2={fsdp_state:.3f}"
          f" (weights, gradients and AdamW moments this process holds, tensor by tensor)")
    print(f"model_state_ratio_fsdp_to_ddp={fsdp_state / ddp_state:.3f}")
    print(f"ratio_fsdp_to_ddp={(fsdp - baseline) / (ddp - baseline):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
