"""Benchmark the local training engine against the Hugging Face ``Trainer`` baseline, in the same run.

Run::

    python scripts/bench_train.py [--families gpt_bigcode,llama] [--steps 16] [--layers 4] [--hidden 128] \
        [--heads 4] [--seq 256] [--micro-batch 4] [--global-batch 8] [--threads 0]

For each family (GPT-BigCode: multi-query attention, learned positions, tied head; Llama: grouped-query
attention, RoPE, SwiGLU, untied head), both sides train the same tiny random model (same config and initial
weights) on the same data
(the fork fixture records ``tests/fixtures/fork/sample*``), with the same sequence length, micro-batch
and global batch (gradient accumulation), AdamW, warmup + cosine, fp32 on CPU / bf16 on GPU:

- baseline: ``transformers.Trainer`` on the HF cookbook's ``ConstantLengthDataset`` (texts tokenized,
  joined with EOS, cut into fixed-length chunks; plain causal LM, no masks);
- engine: ``training.local.engine.train`` on the fork's packed samples (block-diagonal mask, position ids per
  pair, loss on targets only).

The two alternate ``--repeats`` times (the machine may be shared) and each side's best is kept.
Throughput is positions processed per second (global batch x sequence length per optimizer step),
from the wall time between the ends of the steps after ``--warmup`` (a Trainer callback on one side, the
``time`` of the engine's metrics records on the other; data loading and logging included on both sides). The padding
share of the packed rows is printed too. One ``ratio_to_trainer[FAMILY]=<float>`` line per family (engine /
Trainer), then ``ratio_to_trainer=<float>``, the lowest of them.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "fork"


class ConstantLengthDataset:
    """The HF cookbook's iterable: tokenized texts joined by EOS, yielded as fixed-length chunks, forever."""

    def __init__(self, tokenizer, texts: list[str], seq_length: int, eos_id: int, buffer_chars: int = 200_000):
        self.tokenizer, self.texts, self.seq_length, self.eos_id = tokenizer, texts, seq_length, eos_id
        self.buffer_chars = buffer_chars

    def __iter__(self):
        import torch

        position = 0
        while True:
            buffer, size = [], 0
            while size < self.buffer_chars:
                text = self.texts[position % len(self.texts)]
                buffer.append(text)
                size += len(text)
                position += 1
            all_ids: list[int] = []
            for encoded in self.tokenizer.encode_batch(buffer, add_special_tokens=False):
                all_ids.extend(encoded.ids + [self.eos_id])
            for start in range(0, len(all_ids) - self.seq_length + 1, self.seq_length):
                chunk = torch.tensor(all_ids[start:start + self.seq_length], dtype=torch.long)
                yield {"input_ids": chunk, "labels": chunk.clone()}


def fixture_texts() -> list[str]:
    records = [json.loads(line) for name in ("sample.jsonl", "sample2.jsonl")
               for line in (FIXTURES / name).read_text(encoding="utf-8").split("\n") if line]
    return [r["inputs"] + r["targets"] for r in records]


def bench_trainer(args, base_hf: Path, work: Path) -> float:
    import torch
    from tokenizers import Tokenizer
    from torch.utils.data import IterableDataset
    from transformers import AutoModelForCausalLM, Trainer, TrainerCallback, TrainingArguments

    tokenizer = Tokenizer.from_file(str(FIXTURES / "tokenizer.json"))
    source = ConstantLengthDataset(tokenizer, fixture_texts(), args.seq, tokenizer.token_to_id("<|endoftext|>"))

    class Chunks(IterableDataset):
        def __iter__(self):
            return iter(source)

    stamps: list[float] = []

    class StepClock(TrainerCallback):
        def on_step_end(self, *_a, **_k):
            stamps.append(time.perf_counter())

    model = AutoModelForCausalLM.from_pretrained(str(base_hf), attn_implementation="sdpa")
    cuda = torch.cuda.is_available()
    training_args = TrainingArguments(
        output_dir=str(work / "trainer"), per_device_train_batch_size=args.micro_batch,
        gradient_accumulation_steps=args.global_batch // args.micro_batch, max_steps=args.steps,
        learning_rate=1e-3, lr_scheduler_type="cosine", warmup_steps=1, weight_decay=0.1, adam_beta2=0.95,
        max_grad_norm=1.0, logging_steps=10_000, save_strategy="no", report_to=[], seed=1234,
        dataloader_num_workers=0, bf16=cuda, use_cpu=not cuda, disable_tqdm=True,
    )
    Trainer(model=model, args=training_args, train_dataset=Chunks(), callbacks=[StepClock()]).train()
    steady = stamps[args.warmup:]
    step_s = (steady[-1] - steady[0]) / (len(steady) - 1)
    return args.global_batch * args.seq / step_s


def bench_engine(args, base: Path, work: Path) -> tuple[float, float]:
    from runconfig import load_section
    from runconfig.training_section import TrainingConfig
    from training.local.engine import train

    work.mkdir(parents=True, exist_ok=True)
    split = work / "train_data_paths.txt"
    split.write_text(f'"train: 1.0 0:1 {FIXTURES / "sample"}"\n')
    save = work / "engine"
    overrides = {
        "load": base, "save": save, "train_split_file": split, "tokenizer": FIXTURES / "tokenizer.json",
        "seq_length": args.seq, "micro_batch_size": args.micro_batch, "global_batch_size": args.global_batch,
        "train_iters": args.steps, "lr": 1e-3, "lr_warmup_samples": args.global_batch, "save_interval": 10_000,
        "eval_interval": 10_000, "log_interval": 1, "tensorboard": False, "progress_bar": False,
        "cpu_threads": args.threads,
    }
    cfg = load_section(None, "training", TrainingConfig, [f"training.{k}={v}" for k, v in overrides.items()])
    train(cfg, say=lambda _m: None)
    records = [json.loads(x) for x in (save / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["kind"] == "train"][args.warmup:]
    # wall time between the ends of the timed steps, exactly as the Trainer side is measured (logging included)
    step_s = (steps[-1]["time"] - steps[0]["time"]) / (steps[-1]["iteration"] - steps[0]["iteration"])
    targets = sum(r["target_tokens_rank0"] for r in steps) / len(steps)
    return args.global_batch * args.seq / step_s, targets / (args.global_batch * args.seq)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--families", default="gpt_bigcode,llama", help="comma-separated: gpt_bigcode, llama")
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=3, help="leading steps left out of the timing")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--micro-batch", type=int, default=4)
    parser.add_argument("--global-batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs per side; the best counts")
    args = parser.parse_args(argv)
    if args.steps - args.warmup < 3:
        parser.error("--steps must exceed --warmup by at least 3")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    from training.local.model_init import TinyModelSpec, write_tiny_hf_model, write_tiny_release

    if args.threads:
        torch.set_num_threads(args.threads)
    families = [f for f in args.families.split(",") if f]
    ratios = {}
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"device={device} model={args.layers}x{args.hidden} seq={args.seq} micro_batch={args.micro_batch}"
          f" global_batch={args.global_batch} steps={args.steps} (timed after {args.warmup})")
    for family in families:
        with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
            work = Path(tmp)
            spec = TinyModelSpec(args.layers, args.hidden, args.heads, 0, max(args.seq, 256), 0.0, 1234)
            if family == "gpt_bigcode":  # the engine starts from the release, the Trainer from the same weights in HF
                write_tiny_release(FIXTURES / "tokenizer.json", work / "base", spec, hf_out=work / "base_hf")
                engine_base = work / "base"
            else:
                write_tiny_hf_model(FIXTURES / "tokenizer.json", work / "base_hf", family, spec)
                engine_base = work / "base_hf"
            trainer_tps = engine_tps = 0.0
            for repeat in range(args.repeats):
                trainer_tps = max(trainer_tps, bench_trainer(args, work / "base_hf", work / f"t{repeat}"))
                tps, target_share = bench_engine(args, engine_base, work / f"e{repeat}")
                engine_tps = max(engine_tps, tps)
        ratios[family] = engine_tps / trainer_tps
        print(f"[{family}] trainer_tokens_per_s={trainer_tps:.1f}")
        print(f"[{family}] engine_tokens_per_s={engine_tps:.1f} (target-token share of packed positions:"
              f" {target_share:.2f})")
        print(f"ratio_to_trainer[{family}]={ratios[family]:.3f}")
    print(f"ratio_to_trainer={min(ratios.values()):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
