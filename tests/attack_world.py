"""Test helper: tiny inputs for every command, and every command's output flags, for the attack tests.

``build_world(folder)`` writes, once per session (``tests/conftest.py``'s ``attack_world``), what the commands read:
a jsonl, a git repository, sources, a release root (``training.model_init``'s), its Hugging Face export, a save
folder the fork could have written (no record), split files, a run config, the FIM fixture dataset, and the
look-alikes other tools make (a ``save_pretrained`` folder, a release root of ``conversion.hf_to_megatron``).
``output_flags(w)`` lists every output flag of every command as an ``OutputFlag``: how to run the command with
that flag pointed at a path, what kind of output it is and which of the command's inputs it could be pointed at.

    flags = output_flags(world)
    argv = flags["megatron_to_hf --out"].argv(tmp / "hf")
"""
from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tests.conftest import FORK_FIXTURES, REPO_ROOT

EVAL_PROBLEMS = Path(__file__).parent / "fixtures" / "eval_problems"
from tests.local_engine_fixtures import run_overrides, split_files, tiny_release

TOKENIZER = FORK_FIXTURES / "tokenizer.json"
FIM_FIXTURES = REPO_ROOT / "tests" / "fixtures" / "fork_fim"


def build_world(w: Path) -> Path:
    """Every input the commands of ``output_flags`` read, under ``w``."""
    from conversion.hf_to_megatron import convert as hf_to_megatron
    from conversion.megatron_checkpoint import read_megatron_checkpoint, write_megatron_checkpoint
    from conversion.megatron_to_hf import convert, load_hf_model_from_megatron

    shutil.copyfile(FORK_FIXTURES / "sample.jsonl", w / "pairs.jsonl")
    (w / "extra.json").write_text('"more text to train the tokenizer on"\n')
    (w / "prompts.jsonl").write_text('{"prompt": "def add(a, b):"}\n')
    (w / "src").mkdir()
    (w / "src" / "mod.py").write_text('def add(a, b):\n    """Add two numbers."""\n    return a + b\n')
    repo = w / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    for text in ("a = 1\n", "a = 2\n"):
        (repo / "f.py").write_text(text)
        subprocess.run([*git, "add", "f.py"], check=True)
        subprocess.run([*git, "commit", "-qm", f"set {text.strip()}"], check=True)
    base = tiny_release(w)
    convert(base, w / "hf", tokenizer=TOKENIZER, progress=False)
    ckpt = read_megatron_checkpoint(base)
    write_megatron_checkpoint(w / "run", 5, ckpt.hf_state_dict, ckpt.hf_config)  # as the fork writes: no record
    hf_to_megatron(w / "hf", w / "hf_release")  # a release root of another command than model_init's
    model = load_hf_model_from_megatron(base)
    model.save_pretrained(w / "saved_pretrained")  # another tool's model folder: config, weights, tokenizer
    shutil.copy(TOKENIZER, w / "saved_pretrained" / "tokenizer.json")
    (w / "saved_pretrained" / "tokenizer_config.json").write_text('{"model_max_length": 256}\n')
    split_files(w)
    (w / "run.yaml").write_text(f"training:\n  model: starcoderbase-1b\n  load: {base}\n  save: {w / 'run_save'}\n")
    for name in ("code_content_document.bin", "code_content_document.idx", "tokenizer.json"):
        shutil.copy(FIM_FIXTURES / name, w / f"fim_{name}")
    hf_layout_run(w / "llama_run")
    scored_run(w / "he_run")
    return w


def scored_run(out: Path) -> None:
    """A scored HumanEval-format run (``evaluation report`` reads it): the canonical solutions of a small file."""
    from evaluation.commands import main as evaluation_main

    assert evaluation_main(["humaneval", "--language", "python", "--problems", str(EVAL_PROBLEMS / "python.jsonl"),
                            "--canonical", "--out", str(out / "results.json"), "--no-progress"]) == 0


def hf_layout_run(save: Path) -> None:
    """A save folder in the Hugging Face layout (a tiny Llama's first checkpoint), for training.export."""
    import torch

    from training.local.distributed import DistEnv
    from training.local.hf_family.checkpoint import save_checkpoint
    from training.local.hf_family.tiny_models import random_hf_model, tiny_hf_config
    from training.local.model_init import TinyModelSpec

    model = random_hf_model(tiny_hf_config("llama", 8192, 0, 4, TinyModelSpec(1, 32, 4, 0, 64, 0.0)), 1)
    optimizer = torch.optim.AdamW(model.parameters())
    save_checkpoint(save, 1, model, optimizer, DistEnv(0, 1, 0, torch.device("cpu")), False,
                    {"consumed_train_samples": 4, "opt_param_scheduler": {}, "rng_state": [{}], "args": {}})


@dataclass(frozen=True)
class OutputFlag:
    """One output flag of one command: ``argv(out)`` runs it with the flag at ``out``.

    ``shape``: ``file``, ``folder`` (replaced whole or written into) or ``prefix`` (``PREFIX_*`` files).
    ``suffix``: the extension of what it writes there. ``own_input``: an input of the command of a type the flag
    accepts (the attack copies it and points both the input and the flag at the copy), or None.
    ``input_flag``: how ``argv`` takes that input: ``argv(out, input)``.
    """

    module: str
    argv: Callable[..., list[str]]
    shape: str
    suffix: str
    own_input: Path | None = None
    cheap: bool = True  # runs in a second or two when nothing stands in its way


def weights_file(hf: Path) -> Path:
    """The (first) safetensors file of a Hugging Face folder."""
    return sorted(hf.glob("*.safetensors"))[0]


def output_flags(w: Path) -> dict[str, OutputFlag]:
    """Every output flag of every command that writes (``training.fork_flags`` and ``dataset.launch`` write only
    to stdout or their own state; the demo runs the commands below)."""
    weights = weights_file(w / "hf")
    fim = [f"--data-prefix", str(w / "fim_code_content_document"), "--tokenizer", str(w / "fim_tokenizer.json"),
           "--seq-length", "128", "--seed", "1234", "--num-samples", "4", "--split", "969,30,1"]

    def s(path: Path | str) -> str:
        return str(path)

    return {
        "commits_to_jsonl --output": OutputFlag(
            "dataset.commits_to_jsonl", lambda out, i=w / "repo": ["--repo", s(i), "--output", s(out)],
            "file", ".jsonl"),
        "docstring_pairs --output": OutputFlag(
            "dataset.docstring_pairs", lambda out, i=w / "src" / "mod.py": ["--roots", s(Path(i).parent),
                                                                            "--output", s(out)],
            "file", ".jsonl", w / "src" / "mod.py"),
        "code_to_jsonl --output": OutputFlag(
            "dataset.code_to_jsonl", lambda out, i=w / "src" / "mod.py": ["--source", s(Path(i).parent),
                                                                          "--output", s(out)],
            "file", ".jsonl", w / "src" / "mod.py"),
        "train_tokenizer --output": OutputFlag(
            "dataset.train_tokenizer", lambda out, i=w / "extra.json": ["--inputs", s(w / "pairs.jsonl"), s(i),
                                                                        "--output", s(out), "--vocab-size", "300"],
            "file", ".json", w / "extra.json"),
        "preprocess --output-prefix": OutputFlag(
            "dataset.preprocess", lambda out, i=w / "pairs.jsonl": ["--input", s(i), "--tokenizer", s(TOKENIZER),
                                                                    "--output-prefix", s(out), "--workers", "1"],
            "prefix", "_inputs_document.bin", w / "pairs.jsonl"),
        "merge_shards --output-prefix": OutputFlag(
            "dataset.merge_shards", lambda out: ["--output-prefix", s(out), "--num-shards", "2"], "prefix",
            "_inputs_document.bin"),
        "splits write --out": OutputFlag(
            "dataset.splits", lambda out: ["write", "--out", s(out), "--name", "train", "1.0 0:1 pairs"],
            "file", ".txt"),
        "splits plan --json": OutputFlag(
            "dataset.splits", lambda out, i=w / "train_data_paths.txt": [
                "plan", "--train", s(i), "--seq-length", "256", "--train-iters", "2", "--global-batch-size", "4",
                "--json", s(out)], "file", ".json", w / "train_data_paths.txt"),
        "packing --report": OutputFlag(
            "training.packing", lambda out, i=w / "train_data_paths.txt": [
                "--split-file", s(i), "--seq-length", "256", "--num-samples", "85", "--cache-dir",
                s(Path(out).parent / "maps"), "--report", s(out)], "file", ".json", w / "train_data_paths.txt"),
        "packing --cache-dir": OutputFlag(
            "training.packing", lambda out: ["--split-file", s(w / "train_data_paths.txt"), "--seq-length", "256",
                                             "--num-samples", "85", "--cache-dir", s(out)], "cache", ".npy"),
        "gpt_samples --out": OutputFlag(
            "training.gpt_samples", lambda out, i=None: [*_fim(fim, i), "--cache-dir", s(Path(out).parent / "maps"),
                                                         "--out", s(out)],
            "file", ".npy", w / "fim_code_content_document.bin"),
        "gpt_samples --cache-dir": OutputFlag(
            "training.gpt_samples", lambda out: [*fim, "--cache-dir", s(out), "--out", s(Path(out).parent / "s.npy")],
            "cache", ".npy"),
        "model_init --out": OutputFlag(
            "training.model_init", lambda out, i=TOKENIZER: ["--tokenizer", s(i), "--out", s(out), "--layers", "1",
                                                             "--hidden", "32", "--heads", "4", "--max-positions", "64"],
            "folder", ".pt", TOKENIZER),
        "model_init --hf-out": OutputFlag(
            "training.model_init", lambda out, i=TOKENIZER: [
                "--tokenizer", s(i), "--out", s(Path(out).parent / "mi_base"), "--hf-out", s(out), "--layers", "1",
                "--hidden", "32", "--heads", "4", "--max-positions", "64"], "folder", ".safetensors", TOKENIZER),
        "model_init --family --out": OutputFlag(
            "training.model_init", lambda out, i=TOKENIZER: ["--family", "llama", "--tokenizer", s(i), "--out", s(out),
                                                             "--layers", "1", "--hidden", "32", "--heads", "4",
                                                             "--max-positions", "64"],
            "folder", ".safetensors", TOKENIZER),
        "export --out": OutputFlag(
            "training.export", lambda out, i=w / "llama_run": ["--save", s(i), "--out", s(out), "--tokenizer",
                                                               s(TOKENIZER)], "folder", ".safetensors", w / "llama_run"),
        # no warmup: one iteration of 4 samples could not decay after a warmup of 4 (a config error, found first)
        "finetune training.save": OutputFlag(
            "training.finetune", lambda out, i=w / "base": run_overrides(
                w, Path(i), Path(out), train_iters=1, save_interval=1, eval_interval=1, lr_warmup_samples=0),
            "folder", ".pt", w / "base", cheap=False),
        "hf_to_megatron --out": OutputFlag(
            "conversion.hf_to_megatron", lambda out, i=w / "hf": ["--hf", s(i), "--out", s(out)], "folder", ".pt",
            w / "hf"),
        "prepare_release --out": OutputFlag(
            "conversion.prepare_release", lambda out, i=w / "run": ["--megatron", s(i), "--out", s(out)], "folder",
            ".pt", w / "run"),
        "megatron_to_hf --out": OutputFlag(
            "conversion.megatron_to_hf", lambda out, i=w / "base": [
                "--megatron", s(i), "--out", s(out), "--tokenizer", s(TOKENIZER), "--no-progress"],
            "folder", ".safetensors", w / "base"),
        "verify shards --json": OutputFlag(
            "conversion.verify", lambda out, i=weights: ["shards", s(i), s(weights), "--json", s(out)], "file", ".json",
            weights),
        "verify logits --json": OutputFlag(
            "conversion.verify", lambda out, i=w / "prompts.jsonl": [
                "logits", "--hf", s(w / "hf"), "--hf-b", s(w / "hf"), "--tokenizer", s(TOKENIZER),
                "--no-builtin-prompts", "--prompts", s(i), "--json", s(out)], "file", ".json", w / "prompts.jsonl"),
        "launch argv --write": OutputFlag(
            "training.launch", lambda out, i=w / "run.yaml": ["argv", "--config", s(i), "--write", s(out)], "file",
            ".json", w / "run.yaml"),
        "evaluation humaneval --samples --out": OutputFlag(
            "evaluation.commands", lambda out, i=w / "prompts.jsonl": ["humaneval", "--samples", s(i), "--out", s(out)],
            "file", ".json", w / "prompts.jsonl", cheap=False),
        "evaluation humaneval --model --out": OutputFlag(
            "evaluation.commands", lambda out, i=w / "hf": ["humaneval", "--model", s(i), "--out", s(out), "--limit", "1",
                                                            "--n", "1", "--k", "1"],
            "folder", ".jsonl", w / "hf", cheap=False),
        "evaluation infill --out": OutputFlag(
            "evaluation.commands", lambda out, i=w / "hf": ["infill", "--model", s(i), "--out", s(out), "--limit", "1"],
            "file", ".json", None, cheap=False),
        "evaluation mutantfix --out": OutputFlag(
            "evaluation.commands", lambda out, i=w / "hf": ["mutantfix", "--model", s(i), "--out", s(out), "--limit",
                                                            "1"], "file", ".json", None, cheap=False),
        "evaluation humaneval --canonical --out": OutputFlag(
            "evaluation.commands", lambda out, i=EVAL_PROBLEMS / "python.jsonl": [
                "humaneval", "--language", "python", "--problems", s(i), "--canonical", "--out", s(out)],
            "file", ".json", EVAL_PROBLEMS / "python.jsonl", cheap=False),
        "evaluation humanevalfix --samples --out": OutputFlag(
            "evaluation.commands", lambda out, i=w / "prompts.jsonl": [
                "humanevalfix", "--language", "python", "--problems", s(EVAL_PROBLEMS / "humanevalpack_python.jsonl"),
                "--samples", s(i), "--out", s(out)], "file", ".json", w / "prompts.jsonl", cheap=False),
        "evaluation humanevalfix --buggy --out": OutputFlag(
            "evaluation.commands", lambda out, i=EVAL_PROBLEMS / "humanevalpack_python.jsonl": [
                "humanevalfix", "--language", "python", "--problems", s(i), "--buggy", "--out", s(out)],
            "file", ".json", EVAL_PROBLEMS / "humanevalpack_python.jsonl", cheap=False),
        "evaluation humanevalfix --model --out": OutputFlag(
            "evaluation.commands", lambda out, i=w / "hf": [
                "humanevalfix", "--language", "python", "--problems", s(EVAL_PROBLEMS / "humanevalpack_python.jsonl"),
                "--model", s(i), "--out", s(out), "--limit", "1", "--n", "1", "--k", "1"],
            "folder", ".jsonl", w / "hf", cheap=False),
        "evaluation sweep --out": OutputFlag(
            "evaluation.commands", lambda out, i=w / "run": ["sweep", "--run", s(i), "--every", "1", "--out", s(out)],
            "folder", ".png", w / "run", cheap=False),
        "evaluation humanevalfix --canonical --out": OutputFlag(
            "evaluation.commands", lambda out, i=EVAL_PROBLEMS / "humanevalpack_python.jsonl": [
                "humanevalfix", "--language", "python", "--problems", s(i), "--canonical", "--out", s(out)],
            "file", ".json", EVAL_PROBLEMS / "humanevalpack_python.jsonl", cheap=False),
        "evaluation report --out": OutputFlag(
            "evaluation.commands", lambda out: ["report", "--base", s(w / "he_run"), "--tuned", s(w / "he_run"),
                                                "--out", s(out)], "file", ".md"),
        "evaluation toy --out": OutputFlag(
            "evaluation.commands", lambda out: ["toy", "--out", s(out), "--problems", "2", "--pairs-per-language", "2"],
            "folder", ".jsonl"),
        "evaluation compare --out": OutputFlag(
            "evaluation.commands", lambda out: ["compare", "--base", s(w / "hf"), "--tuned", s(w / "hf"), "--out",
                                                s(out), "--max-new-tokens", "2"], "file", ".md", cheap=False),
        "evaluation loss --out": OutputFlag(
            "evaluation.commands", lambda out: ["loss", "--base", s(w / "hf"), "--tuned", s(w / "hf"), "--valid-prefix",
                                                s(FORK_FIXTURES / "sample"), "--out", s(out)], "file", ".json",
            cheap=False),
    }


def _fim(fim: list[str], data: Path | None) -> list[str]:
    """The FIM argv with ``--data-prefix`` pointed at the dataset that holds ``data`` (its own ``.bin``)."""
    if data is None:
        return fim
    argv = list(fim)
    argv[argv.index("--data-prefix") + 1] = str(data).removesuffix(".bin")
    return argv


def tree(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` (hidden ones too) and its bytes; a missing folder is empty."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def json_line(obj: object) -> bytes:
    return (json.dumps(obj) + "\n").encode()
