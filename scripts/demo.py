"""The whole pipeline end to end on the embedded default data, small enough for a laptop CPU (``make demo``).

    .venv/bin/python scripts/demo.py [--config scripts/configs/demo.yaml] [--steps pairs,tokenizer] [KEY=VALUE ...]

Run it from the repository root (``make demo`` does): the run config's paths are relative to the working
directory and everything lands under ``out/demo/``. Overrides are ``section.key=value`` for the run config's
sections (``data.valid_fraction=0.1``, ``training.train_iters=20``) or ``demo.key=value`` for the demo's own
knobs in :class:`DemoSettings` (``demo.max_records=500``).

The demo is a list of named steps (:data:`STEPS`), each a small function that runs one stage through its
module's ``main([...])`` in-process and returns the paths it produced; a header is printed before each step
and a summary of every output path at the end. Later stages are added by appending to :data:`STEPS`.

Data stage: stdlib docstring -> body pairs (``dataset.docstring_pairs``), a byte-level BPE with StarCoder's
special tokens (``dataset.train_tokenizer``), the indexed datasets with a held-out validation prefix
(``dataset.preprocess``), and the weighted split files plus the packing plan (``dataset.splits``).
Training stage: a tiny random GPT-BigCode saved as a Megatron ``release`` checkpoint
(``training.model_init``), continued-pretrained on raw stdlib files with FIM (``dataset.code_to_jsonl``,
``dataset.preprocess --keys content``, ``training.mode: pretrain``), then fine-tuned by the local engine on
the fork's packed samples; the demo checks that
the held-out validation loss goes down. Conversion stage: the last checkpoint -> a Hugging Face folder
(``conversion.megatron_to_hf``), verified by comparing logits with the Megatron side (``conversion.verify``).
Evaluation stage: the base model too is exported, both are evaluated with small limits (``python -m evaluation``:
held-out loss, the harness checks in Python, Go and Rust, pass@k on the TOY task family (``evaluation.toy_tasks``:
its fine-tuning pairs join the data in the ``pairs`` step when ``data.inputs`` names them) and on a HumanEval
subset, compared with intervals and flipped problems, infilling, planted-bug fixes, prompts side by side) and
``out/demo/report.md`` is written with its plot; then the demo checks that the fine-tuned model's TOY pass@1 is above
the base model's in every trained language (:func:`check_toy_effect`), and stops with an error otherwise. The
outcome is deterministic on a CPU for a given seed and number of torch threads (``training.cpu_threads``; 0 takes
torch's default, the machine's cores; demo.yaml says 2): another thread count sums in another order and trains other
weights.

``demo.model_family=llama`` (or mistral, qwen2, starcoder2) runs the same stages with a tiny random model of that
family written as a Hugging Face folder (``training.model_init --family``): the local engine trains it with
checkpoints in the Hugging Face layout (``training.local.hf_family``), ``training.export`` makes the Hugging Face folders,
and the report compares base and fine-tuned on the same prompts (Python, Go and Rust side by side).
"""
from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from guardrails.command_errors import run_command
from guardrails.output_ledger import OutputLedger
from guardrails.output_paths import OutputRefused
from guardrails.output_records import OutputKind
from runconfig import ConfigError, build_dataclass, parse_overrides
from runconfig.run_config import RunConfig, load_run_config
from runconfig.value_rules import POSITIVE, SEED, Bound

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "demo.yaml"
DEMO = OutputKind("the demo's output", "scripts/demo.py")
LEDGER_NAME = "demo.manifest.json"  # beside the checkpoints: the folders this demo made (guardrails.output_ledger)


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is below it (shorter commands in the log)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@dataclass(frozen=True)
class DemoSettings:
    """Knobs of the demo itself (not a run-config section): set with ``demo.key=value``."""

    max_records: int = 300  # docstring pairs: few, so the TOY pairs (below) are most of the fine-tune
    max_record_chars: int = 800  # most pairs then fit a 256-token row
    seed: int = 1234
    vocab_size: int = 8192
    roots: tuple[str, ...] = ()  # source folders for the pairs; empty = the installed stdlib
    model_family: str = "gpt_bigcode"  # or llama, mistral, qwen2, starcoder2 (Hugging Face checkpoints)
    model_layers: int = 2  # the tiny model the demo fine-tunes (GPT-BigCode: MQA, learned positions)
    model_hidden: int = 64
    model_heads: int = 4
    fresh: bool = True  # start training from the base model, discarding an earlier demo run's checkpoints (only ever
    # a run this demo made: guardrails.output_ledger)
    pretrain_iters: int = 20  # continued pretraining on raw code with FIM before the fine-tune; 0 = skip it
    pretrain_files: int = 200
    eval_problems: int = 5  # HumanEval problems each model generates for (a labelled subset; the harness takes 164)
    eval_samples: int = 2  # samples per HumanEval problem
    toy_problems: int = 16  # TOY test problems per language (evaluation.toy_tasks), when data.inputs has the toy pairs
    toy_pairs: int = 2000  # TOY fine-tuning pairs per language (Python, Go), never a test problem
    toy_samples: int = 5  # samples per TOY problem (pass@1 and pass@5)

    def __post_init__(self) -> None:
        # refused when the demo starts, not minutes later when the step that reads the value runs
        for name, bound in DEMO_BOUNDS.items():
            problem = bound.problem(getattr(self, name))
            if problem:
                raise ValueError(f"{name} {problem}")


# every numeric knob's range (runconfig.value_rules' Bound; tests/test_demo_data_stage.py checks none is missing)
DEMO_BOUNDS: dict[str, Bound] = {
    "max_records": POSITIVE, "max_record_chars": POSITIVE, "seed": SEED, "vocab_size": POSITIVE,
    "model_layers": POSITIVE, "model_hidden": POSITIVE, "model_heads": POSITIVE,
    "pretrain_iters": Bound(low=0, note="0 = skip the continued pretraining"), "pretrain_files": POSITIVE,
    "eval_problems": POSITIVE, "eval_samples": POSITIVE,
    "toy_problems": POSITIVE, "toy_pairs": POSITIVE, "toy_samples": POSITIVE,
}


@dataclass
class DemoRun:
    """What the steps share: the run config, the demo's settings and the outputs so far (step -> paths)."""

    config: RunConfig
    settings: DemoSettings
    config_path: str
    overrides: tuple[str, ...] = ()  # the run-config overrides, as given on the command line
    outputs: dict[str, list[Path]] = field(default_factory=dict)

    @property
    def ledger(self) -> OutputLedger:
        """``demo.manifest.json`` next to the checkpoints: the nonces of the folders this demo made."""
        return OutputLedger(Path(self.config.training.save).parent / LEDGER_NAME, DEMO)

    def overrides_for(self, section: str) -> list[str]:
        """The ``section.key=value`` overrides, for a stage that reads the run config itself."""
        return [o for o in self.overrides if o.split("=", 1)[0].split(".", 1)[0] == section]


class DemoStepError(RuntimeError):
    """A stage returned a non-zero status (``status``; its own error message was printed above), or the demo's
    own check of a result failed (status 1)."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


COMMANDS_RUN: list[str] = []  # every command printed, for the report


def _announce(command: str) -> None:
    print(command, flush=True)
    COMMANDS_RUN.append(command.removeprefix("$ "))


def _run_stage(name: str, stage_main: Callable[[list[str]], int], argv: list[str]) -> None:
    _announce(f"$ python -m {name} {' '.join(argv)}")
    status = stage_main(argv)
    if status != 0:
        raise DemoStepError(f"{name} exited with status {status}", status)


def toy_folder(run: DemoRun) -> Path | None:
    """The TOY task folder: the folder of data.inputs' second file (``toy_pairs.jsonl``), when there is one."""
    inputs = run.config.data.inputs
    return Path(inputs[1]).parent if len(inputs) == 2 else None


def build_toy(run: DemoRun) -> list[Path]:
    from evaluation import commands as evaluation
    from evaluation.toy_tasks import TOY_FOLDER

    folder = toy_folder(run)
    if folder is None:
        return []
    if Path(run.config.data.inputs[1]).name != "toy_pairs.jsonl":
        raise ConfigError("data.inputs: the second file must be TOY_FOLDER/toy_pairs.jsonl (python -m evaluation toy)")
    s = run.settings
    _run_stage("evaluation", evaluation.main, ["toy", "--out", str(folder), "--problems", str(s.toy_problems),
                                               "--pairs-per-language", str(s.toy_pairs), "--seed", str(s.seed)])
    return [Path(run.config.data.inputs[1]), folder / TOY_FOLDER.record]


def build_pairs(run: DemoRun) -> list[Path]:
    from dataset.builders import docstring_pairs
    from dataset.builders.octopack_format import manifest_path_for

    if len(run.config.data.inputs) not in (1, 2):
        raise ConfigError("the demo builds one jsonl of docstring pairs, and optionally the TOY pairs: give data.inputs"
                          " [PAIRS.jsonl] or [PAIRS.jsonl, TOY_FOLDER/toy_pairs.jsonl]")
    output = Path(run.config.data.inputs[0])
    argv = ["--output", str(output), "--seed", str(run.settings.seed),
            "--max-records", str(run.settings.max_records), "--max-record-chars", str(run.settings.max_record_chars)]
    if run.settings.roots:
        argv += ["--roots", *run.settings.roots]
    _run_stage("dataset.docstring_pairs", docstring_pairs.main, argv)
    return [output, manifest_path_for(output), *build_toy(run)]


def train_tokenizer(run: DemoRun) -> list[Path]:
    from dataset.builders import train_tokenizer as trainer

    output = Path(run.config.data.tokenizer)
    argv = ["--inputs", *run.config.data.inputs, "--output", str(output), "--vocab-size", str(run.settings.vocab_size)]
    _run_stage("dataset.train_tokenizer", trainer.main, argv)
    return [output, output.with_name("tokenizer_config.json"), output.with_name("special_tokens_map.json")]


def preprocess(run: DemoRun) -> list[Path]:
    from dataset.preprocessing import preprocess as stage
    from dataset.formats.preprocess_manifest import manifest_path
    from dataset.formats.preprocess_outputs import output_files, valid_output_prefix

    # the stage re-reads the same run config and overrides, so what it does is what the config says
    _run_stage("dataset.preprocess", stage.main, ["--config", run.config_path, *run.overrides_for("data")])
    prefix = run.config.data.output_prefix
    held_out = run.config.data.valid_fraction or run.config.data.valid_count
    return [*output_files(prefix), *(output_files(valid_output_prefix(prefix)) if held_out else []),
            manifest_path(prefix)]


def split_files(run: DemoRun) -> list[Path]:
    from dataset.splitting import splits as stage

    overrides = run.overrides_for("splits")
    _run_stage("dataset.splits", stage.main, ["write", "--config", run.config_path, *overrides])
    # the plan reads the run's sequence length, iterations and batch from the training: section
    _run_stage("dataset.splits", stage.main,
               ["plan", "--config", run.config_path, *overrides, *run.overrides_for("training")])
    out_dir = Path(run.config.splits.out_dir)
    written = [out_dir / stage.SPLIT_FILE_NAMES[role] for role in ("train", "valid") if getattr(run.config.splits, role)]
    return [*written, out_dir / stage.PLAN_FILE_NAME]


def hf_family(run: DemoRun) -> bool:
    """True when the demo trains a family the fork cannot load (Hugging Face checkpoints and exports)."""
    return run.settings.model_family != "gpt_bigcode"


def start_model(run: DemoRun) -> Path:
    """The tiny base model: ``training.load`` (a release), or ``base_FAMILY_hf`` beside it for another family."""
    load = Path(run.config.training.load)
    return load.with_name(f"base_{run.settings.model_family}_hf") if hf_family(run) else load


def base_model(run: DemoRun) -> list[Path]:
    from training.local import model_init

    out = start_model(run)
    argv = ["--tokenizer", run.config.data.tokenizer, "--out", str(out),
            "--layers", str(run.settings.model_layers), "--hidden", str(run.settings.model_hidden),
            "--heads", str(run.settings.model_heads), "--max-positions", str(run.config.training.seq_length),
            "--seed", str(run.settings.seed)]
    from conversion.output_kinds import HF_RECORD, RELEASE_RECORD
    from guardrails.output_records import read_record

    # the demo's own base model, rebuilt from the same seed (never a model anyone else made): a release root, or
    # for another family a Hugging Face folder
    record = HF_RECORD if hf_family(run) else RELEASE_RECORD
    if hf_family(run):
        argv += ["--family", run.settings.model_family]
    _discard_earlier(out, run, record, "training.load")
    _run_stage("training.model_init", model_init.main, argv)
    run.ledger.remember(out, str((read_record(out / record) or {}).get("nonce")))
    return [out]


def pretrain_dir(run: DemoRun) -> Path:
    """Continued pretraining sits next to the checkpoints: ``out/demo/checkpoints`` -> ``out/demo/pretrain``."""
    return Path(run.config.training.save).parent / "pretrain"


def fine_tune_start(run: DemoRun) -> str:
    """What the fine-tune starts from (and the evaluation's base): the continued-pretrained model when the
    pretrain step ran, else ``training.load``."""
    pretrained = pretrain_dir(run) / "checkpoints"
    return str(pretrained) if (pretrained / "latest_checkpointed_iteration.txt").exists() else str(start_model(run))


def _discard_earlier(folder: Path, run: DemoRun, record: str, key: str, extra: Sequence[str] = ()) -> None:
    """With ``demo.fresh``, remove ``folder`` when the ledger proves an earlier run of this demo made it and it
    holds nothing ``extra`` (names no run writes); anything else is refused, never deleted."""
    if not (run.settings.fresh and (folder.exists() or folder.is_symlink())):
        return
    problem = run.ledger.problem(folder, record)
    if problem is None and extra:
        problem = f"it also holds {', '.join(extra[:5])}, which no run writes"
    if problem is not None:
        raise OutputRefused(f"{key} {folder}: {problem}; demo.fresh deletes only what an earlier demo run made."
                            f" Choose another {key}, or move it away (demo.fresh=false resumes a run instead)")
    shutil.rmtree(folder)


def _fresh_save_folder(save: Path, run: DemoRun) -> None:
    """Discard the demo's earlier run at ``save`` (demo.fresh), then make the folder the demo's own: its record's
    nonce goes into the ledger before training starts, so an interrupted run is still the demo's to discard."""
    from guardrails.output_paths import check_run_folder, own_run_folder
    from training.local.checkpointing import TRAINING_RUN, foreign_entries

    _discard_earlier(save, run, TRAINING_RUN.record, "training.save",
                     foreign_entries(save) if save.is_dir() else [])
    check_run_folder(save, TRAINING_RUN, "training.save")
    run.ledger.remember(save, own_run_folder(save, TRAINING_RUN))


def pretrain(run: DemoRun) -> list[Path]:
    import sysconfig

    from dataset.builders import code_to_jsonl
    from dataset.preprocessing import preprocess as stage
    from training.local.engine import train

    out, iters = pretrain_dir(run), run.settings.pretrain_iters
    if iters <= 0:
        return []
    code, prefix = out / "code.jsonl", out / "code"
    source = (run.settings.roots or (sysconfig.get_paths()["stdlib"],))[0]
    _run_stage("dataset.code_to_jsonl", code_to_jsonl.main, [
        "--source", source, "--output", str(code), "--filename-prefix", "--max-file-bytes", "20000",
        "--max-records", str(run.settings.pretrain_files), "--seed", str(run.settings.seed),
        "--exclude-dir", *code_to_jsonl.DEFAULT_EXCLUDE_DIRS, "test", "tests", "idle_test"])
    _run_stage("dataset.preprocess", stage.main, ["--input", str(code), "--tokenizer", run.config.data.tokenizer,
                                                  "--output-prefix", str(prefix), "--keys", "content", "--append-eod"])
    t = run.config.training
    cfg = dataclasses.replace(t, mode="pretrain", save=str(out / "checkpoints"), load=str(start_model(run)), tokenizer=t.tokenizer or run.config.data.tokenizer,
                              train_iters=iters, save_interval=iters, eval_interval=iters, lr_warmup_samples=0,
                              pretrain=dataclasses.replace(t.pretrain, data_path=f"{prefix}_content_document",
                                                           fim_split_sample="<filename>"))
    _fresh_save_folder(Path(cfg.save), run)
    result = train(cfg)
    print(f"continued pretraining with FIM: validation loss {result.valid_losses[0][1]:.4f} ->"
          f" {result.valid_losses[-1][1]:.4f}; the fine-tune starts from {cfg.save}")
    return [code, Path(f"{prefix}_content_document.bin"), Path(cfg.save)]


def finetune(run: DemoRun) -> list[Path]:
    from training.local.engine import train

    # the model trains on the tokenizer the data stage used, unless the training section names one
    cfg = dataclasses.replace(run.config.training, tokenizer=run.config.training.tokenizer or run.config.data.tokenizer)
    cfg = dataclasses.replace(cfg, load=fine_tune_start(run))
    save = Path(cfg.save)
    _fresh_save_folder(save, run)  # otherwise the engine would resume the earlier demo run (nothing left to do)
    filled_in = [] if run.config.training.tokenizer else [f"training.tokenizer={cfg.tokenizer}"]
    _announce(f"$ python -m training.finetune --engine local --config {run.config_path}"
              f" {' '.join([*run.overrides_for('training'), *filled_in])}")  # the command that reproduces it
    result = train(cfg)
    if len(result.valid_losses) < 2:
        raise DemoStepError("training produced fewer than two validation losses; raise training.train_iters")
    (first_iter, first), (last_iter, last) = result.valid_losses[0], result.valid_losses[-1]
    trend = "went down" if last < first else "did NOT go down"
    print(f"validation loss {trend}: {first:.4f} (iteration {first_iter}) -> {last:.4f} (iteration {last_iter})")
    if not last < first:
        raise DemoStepError("validation loss did not go down")
    return [save, save / "metrics.jsonl", save / "loss_curve.png"]


def to_hugging_face(run: DemoRun) -> list[Path]:
    from conversion import megatron_to_hf, verify

    out = hf_output_dir(run)
    save = run.config.training.save
    if hf_family(run):  # the fork's converter reads its own layout only; training.export reads both
        from training.local import export

        _run_stage("training.export", export.main, ["--save", save, "--out", str(out)])
        return [out]
    _run_stage("conversion.megatron_to_hf", megatron_to_hf.main,
               ["--megatron", save, "--out", str(out), "--tokenizer", run.config.data.tokenizer,
                "--config", run.config_path, "--no-progress", *run.overrides_for("conversion")])
    _run_stage("conversion.verify", verify.main, ["logits", "--megatron", save, "--hf", str(out)])
    return [out]


def hf_output_dir(run: DemoRun) -> Path:
    """The Hugging Face export sits next to the checkpoints: ``out/demo/checkpoints`` -> ``out/demo/hf``."""
    return Path(run.config.training.save).parent / "hf"


def evaluate(run: DemoRun) -> list[Path]:
    import os

    from conversion import megatron_to_hf
    from guardrails.file_set import atomic_file_set
    from guardrails.output_paths import claim_file
    from guardrails.output_records import sidecar_record
    from dataset.formats.preprocess_manifest import manifest_path
    from dataset.formats.preprocess_outputs import valid_output_prefix
    from evaluation import commands as evaluation
    from evaluation.report import ComparisonPlan, ReportContext, comparison_commands, generated_runs, render_report

    demo_dir, tuned = hf_output_dir(run).parent, hf_output_dir(run)
    base, eval_dir = demo_dir / "base_hf", demo_dir / "eval"
    if hf_family(run) and fine_tune_start(run) == str(start_model(run)):
        base = start_model(run)  # already a Hugging Face folder (no continued pretraining to export)
    toy = toy_folder(run)
    plan = ComparisonPlan(toy_dir=toy if toy is not None and toy.is_dir() else None, toy_samples=run.settings.toy_samples,
                          problems=run.settings.eval_problems, samples=run.settings.eval_samples,
                          workers=os.cpu_count() or 1)
    commands = comparison_commands(base, tuned, valid_output_prefix(run.config.data.output_prefix), eval_dir, plan)
    # every evaluation output below is rewritten by its own command, which replaces only its own earlier output; the
    # report reads only the runs of these commands. The report and its plot are one output of the demo's (one record)
    report_path = claim_file(demo_dir / "report.md", DEMO, "training.save")  # refused before the evaluation
    plot = claim_file(demo_dir / "report_pass_at_1.png", DEMO, "training.save", record=sidecar_record(report_path))
    if not hf_family(run):
        _run_stage("conversion.megatron_to_hf", megatron_to_hf.main,
                   ["--megatron", fine_tune_start(run), "--out", str(base), "--tokenizer", run.config.data.tokenizer,
                    "--config", run.config_path, "--no-progress", *run.overrides_for("conversion")])
    elif base != start_model(run):  # the continued-pretrained model is the base
        from training.local import export

        _run_stage("training.export", export.main, ["--save", fine_tune_start(run), "--out", str(base)])
    for argv in commands:
        _run_stage("evaluation", evaluation.main, argv)
    with atomic_file_set(report_path, DEMO) as files:  # the report, its plot and their record appear together
        context = ReportContext("Demo report: did the fine-tune help?", COMMANDS_RUN,
                                manifest_path(run.config.data.output_prefix),
                                Path(run.config.splits.out_dir) / "split_plan.json",
                                os.path.relpath(Path(run.config.training.save) / "loss_curve.png", demo_dir),
                                plot=plot, runs=generated_runs(commands), files=files)
        text = render_report(eval_dir, context)
        if plot not in files.temporaries:
            files.remove(plot)  # an earlier run's (proven above): only this run's plot may sit beside the report
        files.temporary(report_path).write_bytes(text.encode("utf-8"))
    if plan.toy_dir is not None:  # after the report, which then shows what went wrong
        check_toy_effect(eval_dir, plan.toy_languages)
    return [base, eval_dir, report_path, *([plot] if plot.exists() else [])]


def check_toy_effect(eval_dir: Path, languages: Sequence[str]) -> None:
    """The demo's point: on the TOY problems the fine-tuned model's pass@1 is above the base model's in every
    trained language (as the fine-tune's own check wants the validation loss down); the demo stops otherwise."""
    import json

    def pass_at_1(label: str, language: str) -> float:
        return json.loads((eval_dir / label / f"toy-{language}" / "results.json").read_text())["pass@1"]

    moved = {language: (pass_at_1("base", language), pass_at_1("fine-tuned", language)) for language in languages}
    shown = ", ".join(f"{language} {100 * b:.1f}% -> {100 * t:.1f}%" for language, (b, t) in moved.items())
    flat = [language for language, (b, t) in moved.items() if not t > b]
    print(f"TOY pass@1 {'did NOT go up in ' + ', '.join(flat) if flat else 'went up'}: {shown} (base -> fine-tuned)")
    if flat:
        raise DemoStepError(f"the fine-tuned model's TOY pass@1 is not above the base model's in {', '.join(flat)}"
                            " (see the report); train longer (training.train_iters) or on more TOY pairs (demo.toy_pairs)")


STEPS: list[tuple[str, Callable[[DemoRun], list[Path]]]] = [
    ("pairs", build_pairs),
    ("tokenizer", train_tokenizer),
    ("preprocess", preprocess),
    ("splits", split_files),
    ("base_model", base_model),
    ("pretrain", pretrain),
    ("finetune", finetune),
    ("to_hf", to_hugging_face),
    ("evaluate", evaluate),
]


def run_steps(run: DemoRun, names: Sequence[str]) -> None:
    for index, (name, step) in enumerate(STEPS, start=1):
        if name not in names:
            continue
        print(f"\n=== [{index}/{len(STEPS)}] {name} ===", flush=True)
        started = time.monotonic()
        run.outputs[name] = step(run)
        print(f"--- {name} done in {time.monotonic() - started:.1f}s", flush=True)


def print_summary(run: DemoRun) -> None:
    print("\n=== outputs ===")
    for name, paths in run.outputs.items():
        for path in paths:
            state = "" if path.exists() else "  (missing!)"
            print(f"{name:>12}: {path}{state}")


def _parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str], list[str]]:
    parser = argparse.ArgumentParser(prog="scripts/demo.py", description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=_shown(DEFAULT_CONFIG), help="the run config (YAML)")
    parser.add_argument("--steps", default="", help=f"comma-separated subset of: {','.join(n for n, _ in STEPS)}")
    parser.add_argument("overrides", nargs="*", help="section.key=value (demo.key=value for DemoSettings)")
    args = parser.parse_args(argv)
    demo = [o for o in args.overrides if o.split("=", 1)[0].startswith("demo.")]
    overrides = [o for o in args.overrides if o not in demo]
    keys = [o.split("=", 1)[0] for o in overrides]
    if "data.tokenizer" in keys and "training.tokenizer" not in keys:
        # demo.yaml's training.tokenizer is the data's (a YAML alias): an override of one moves both
        overrides.append("training.tokenizer=" + overrides[keys.index("data.tokenizer")].split("=", 1)[1])
    return args, demo, overrides


def main(argv: list[str] | None = None) -> int:
    args, demo_overrides, overrides = _parse_args(argv)
    names = [n for n in args.steps.split(",") if n] or [n for n, _ in STEPS]
    unknown = sorted(set(names) - {n for n, _ in STEPS})
    try:
        if unknown:
            raise ConfigError(f"--steps: unknown step {unknown[0]!r} (steps: {', '.join(n for n, _ in STEPS)})")
        config = load_run_config(args.config, overrides)
        settings = build_dataclass(DemoSettings, parse_overrides(demo_overrides, "demo"), "overrides:demo")
        from training.local.hf_family.tiny_models import TINY_FAMILIES

        if settings.model_family not in ("gpt_bigcode", *TINY_FAMILIES):
            raise ConfigError(f"demo.model_family {settings.model_family!r}: one of gpt_bigcode, {', '.join(TINY_FAMILIES)}")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    run = DemoRun(config, settings, args.config, tuple(overrides))
    started = time.monotonic()
    try:
        run_steps(run, names)
    except (DemoStepError, ConfigError, OutputRefused) as exc:
        print_summary(run)
        print(f"\ndemo stopped: {exc}", file=sys.stderr)
        # the house rule: a user error (a refused output, a bad value, a stage that said so) is status 2
        status = exc.status if isinstance(exc, DemoStepError) else 2
        return status if status in (1, 2) else 1
    print_summary(run)
    print(f"\ndemo finished in {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_command(main))
