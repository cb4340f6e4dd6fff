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
(``training.model_init``), fine-tuned by the local engine on the fork's packed samples; the demo checks that
the held-out validation loss goes down. Conversion stage: the last checkpoint -> a Hugging Face folder
(``conversion.megatron_to_hf``), verified by comparing logits with the Megatron side (``conversion.verify``).
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

from runconfig import ConfigError, build_dataclass, parse_overrides
from runconfig.run_config import RunConfig, load_run_config

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "demo.yaml"


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is below it (shorter commands in the log)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@dataclass(frozen=True)
class DemoSettings:
    """Knobs of the demo itself (not a run-config section): set with ``demo.key=value``."""

    max_records: int = 3000  # a few thousand pairs keep the data stage to seconds
    max_record_chars: int = 800  # most pairs then fit a 256-token row
    seed: int = 1234
    vocab_size: int = 8192
    roots: tuple[str, ...] = ()  # source folders for the pairs; empty = the installed stdlib
    model_layers: int = 2  # the tiny GPT-BigCode the demo fine-tunes (MQA, learned positions)
    model_hidden: int = 64
    model_heads: int = 4
    fresh: bool = True  # start training from the base model, discarding an earlier demo run's checkpoints


@dataclass
class DemoRun:
    """What the steps share: the run config, the demo's settings and the outputs so far (step -> paths)."""

    config: RunConfig
    settings: DemoSettings
    config_path: str
    overrides: tuple[str, ...] = ()  # the run-config overrides, as given on the command line
    outputs: dict[str, list[Path]] = field(default_factory=dict)

    def overrides_for(self, section: str) -> list[str]:
        """The ``section.key=value`` overrides, for a stage that reads the run config itself."""
        return [o for o in self.overrides if o.split("=", 1)[0].split(".", 1)[0] == section]


class DemoStepError(RuntimeError):
    """A stage returned a non-zero status; its own error message was printed above."""


def _run_stage(name: str, stage_main: Callable[[list[str]], int], argv: list[str]) -> None:
    print(f"$ python -m {name} {' '.join(argv)}", flush=True)
    status = stage_main(argv)
    if status != 0:
        raise DemoStepError(f"{name} exited with status {status}")


def build_pairs(run: DemoRun) -> list[Path]:
    from dataset import docstring_pairs
    from dataset.octopack_format import manifest_path_for

    if len(run.config.data.inputs) != 1:
        raise ConfigError("the demo builds exactly one jsonl: give data.inputs a single path")
    output = Path(run.config.data.inputs[0])
    argv = ["--output", str(output), "--seed", str(run.settings.seed),
            "--max-records", str(run.settings.max_records), "--max-record-chars", str(run.settings.max_record_chars)]
    if run.settings.roots:
        argv += ["--roots", *run.settings.roots]
    _run_stage("dataset.docstring_pairs", docstring_pairs.main, argv)
    return [output, manifest_path_for(output)]


def train_tokenizer(run: DemoRun) -> list[Path]:
    from dataset import train_tokenizer as trainer

    output = Path(run.config.data.tokenizer)
    argv = ["--inputs", *run.config.data.inputs, "--output", str(output), "--vocab-size", str(run.settings.vocab_size)]
    _run_stage("dataset.train_tokenizer", trainer.main, argv)
    return [output, output.with_name("tokenizer_config.json"), output.with_name("special_tokens_map.json")]


def preprocess(run: DemoRun) -> list[Path]:
    from dataset import preprocess as stage
    from dataset.preprocess_manifest import manifest_path
    from dataset.preprocess_outputs import output_files, valid_output_prefix

    # the stage re-reads the same run config and overrides, so what it does is what the config says
    _run_stage("dataset.preprocess", stage.main, ["--config", run.config_path, *run.overrides_for("data")])
    prefix = run.config.data.output_prefix
    held_out = run.config.data.valid_fraction or run.config.data.valid_count
    return [*output_files(prefix), *(output_files(valid_output_prefix(prefix)) if held_out else []),
            manifest_path(prefix)]


def split_files(run: DemoRun) -> list[Path]:
    from dataset import splits as stage

    overrides = run.overrides_for("splits")
    _run_stage("dataset.splits", stage.main, ["write", "--config", run.config_path, *overrides])
    # the plan reads the run's sequence length, iterations and batch from the training: section
    _run_stage("dataset.splits", stage.main,
               ["plan", "--config", run.config_path, *overrides, *run.overrides_for("training")])
    out_dir = Path(run.config.splits.out_dir)
    written = [out_dir / stage.SPLIT_FILE_NAMES[role] for role in ("train", "valid") if getattr(run.config.splits, role)]
    return [*written, out_dir / stage.PLAN_FILE_NAME]


def base_model(run: DemoRun) -> list[Path]:
    from training import model_init

    out = Path(run.config.training.load)
    argv = ["--tokenizer", run.config.data.tokenizer, "--out", str(out),
            "--layers", str(run.settings.model_layers), "--hidden", str(run.settings.model_hidden),
            "--heads", str(run.settings.model_heads), "--max-positions", str(run.config.training.seq_length),
            "--seed", str(run.settings.seed)]
    if out.exists() and run.settings.fresh:
        shutil.rmtree(out)  # the demo's own base model, rebuilt from the same seed
    _run_stage("training.model_init", model_init.main, argv)
    return [out]


def finetune(run: DemoRun) -> list[Path]:
    from training.engine import train

    # the model trains on the tokenizer the data stage used, unless the training section names one
    cfg = dataclasses.replace(run.config.training, tokenizer=run.config.training.tokenizer or run.config.data.tokenizer)
    save = Path(cfg.save)
    if save.exists() and run.settings.fresh:
        shutil.rmtree(save)  # otherwise the engine would resume the earlier demo run (and have nothing left to do)
    filled_in = [] if run.config.training.tokenizer else [f"training.tokenizer={cfg.tokenizer}"]
    print(f"$ python -m training.finetune --engine local --config {run.config_path}"
          f" {' '.join([*run.overrides_for('training'), *filled_in])}", flush=True)  # the command that reproduces it
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
    _run_stage("conversion.megatron_to_hf", megatron_to_hf.main,
               ["--megatron", save, "--out", str(out), "--tokenizer", run.config.data.tokenizer,
                "--config", run.config_path, "--no-progress", *run.overrides_for("conversion")])
    _run_stage("conversion.verify", verify.main, ["logits", "--megatron", save, "--hf", str(out)])
    return [out]


def hf_output_dir(run: DemoRun) -> Path:
    """The Hugging Face export sits next to the checkpoints: ``out/demo/checkpoints`` -> ``out/demo/hf``."""
    return Path(run.config.training.save).parent / "hf"


STEPS: list[tuple[str, Callable[[DemoRun], list[Path]]]] = [
    ("pairs", build_pairs),
    ("tokenizer", train_tokenizer),
    ("preprocess", preprocess),
    ("splits", split_files),
    ("base_model", base_model),
    ("finetune", finetune),
    ("to_hf", to_hugging_face),
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
    return args, demo, [o for o in args.overrides if o not in demo]


def main(argv: list[str] | None = None) -> int:
    args, demo_overrides, overrides = _parse_args(argv)
    names = [n for n in args.steps.split(",") if n] or [n for n, _ in STEPS]
    unknown = sorted(set(names) - {n for n, _ in STEPS})
    try:
        if unknown:
            raise ConfigError(f"--steps: unknown step {unknown[0]!r} (steps: {', '.join(n for n, _ in STEPS)})")
        config = load_run_config(args.config, overrides)
        settings = build_dataclass(DemoSettings, parse_overrides(demo_overrides, "demo"), "overrides:demo")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    run = DemoRun(config, settings, args.config, tuple(overrides))
    started = time.monotonic()
    try:
        run_steps(run, names)
    except (DemoStepError, ConfigError) as exc:
        print_summary(run)
        print(f"\ndemo stopped: {exc}", file=sys.stderr)
        return 1
    print_summary(run)
    print(f"\ndemo finished in {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
