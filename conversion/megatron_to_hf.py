"""Convert a Megatron checkpoint (BigCode fork, any TP/PP, plain or distributed-optimizer) to Hugging Face.

    python -m conversion.megatron_to_hf --megatron CKPT_ROOT --out HF_DIR [--tokenizer tokenizer.json]
        [--format safetensors|bin] [--dtype float32|bfloat16|float16] [--max-shard-size 2GB]
        [--tag release|ITER] [--config run.yaml]

Streams one tensor at a time: the TP shards are indexed without loading them and each merged tensor's
bytes go from the shard files into the output shard being filled (copied by the kernel when the dtype is
unchanged), so memory stays about one tensor whatever the model size. The fork's vocab padding rows are
dropped: ``vocab_size`` is the checkpoint's recorded ``true_vocab_size``, else the tokenizer's size
(``conversion.vocab_padding``). Output (DESIGN.md 2.5): sharded
weights + index, ``config.json`` (tanh GELU, multi-query, bos/eos from the tokenizer), tokenizer files,
``generation_config.json`` and ``conversion_manifest.json`` (the record that proves the folder is this command's
output); the folder appears atomically and replaces an old one only when complete and only when that record
proves it (an ``--out`` holding the checkpoint, a ``save_pretrained`` folder, any non-empty folder without it is
refused with what it holds: ``conversion.output_kinds``). Options not
given on the command line come from the run config's ``conversion:`` section (then the section's defaults).
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm
from transformers import GenerationConfig, GPTBigCodeForCausalLM

from guardrails.command_errors import run_command
from guardrails.atomic_folder import atomic_output_dir
from guardrails.output_paths import claim_folder
from guardrails.output_records import write_record
from conversion.hf_checkpoint_writer import DTYPES, ShardedWeightWriter
from runconfig.sizes import parse_size
from conversion.key_map import HF_TIED_HEAD
from conversion.output_kinds import HF_MODEL
from conversion.megatron_reader import MegatronReader
from conversion.tensor_source import OpenFiles
from conversion.tokenizer_files import write_tokenizer_files


def check_out_dir(out_dir: Path, megatron_dir: Path) -> None:
    """Refuse an output folder whose replacement would delete the source or anything but this command's output.

    The output replaces ``out_dir`` as a whole, so an ``--out`` that is the checkpoint root or one of its
    parents, or any folder that is not provably a folder this command wrote (``--out .``, a data folder, a
    ``save_pretrained`` folder), would be deleted with everything in it.
    """
    claim_folder(out_dir, HF_MODEL, "--out", inputs=[megatron_dir])


def convert(
    megatron_dir: str | Path,
    out_dir: str | Path,
    tokenizer: str | Path | None = None,
    fmt: str = "safetensors",
    dtype: torch.dtype | None = None,
    max_shard_size: int | str = "2GB",
    tag: str | None = None,
    progress: bool = True,
) -> Path:
    """Stream ``megatron_dir`` (its tracker's tag unless ``tag``) into the HF folder ``out_dir``.

    ``dtype`` None keeps the checkpoint's own dtype (the fast path: bytes are copied, never converted).
    """
    started = time.perf_counter()
    check_out_dir(Path(out_dir), Path(megatron_dir))
    reader = MegatronReader(megatron_dir, tag)
    tokenizer_path = reader.tokenizer(tokenizer)
    config = reader.hf_config(tokenizer_path)
    dtype = dtype or reader.stored_dtype()
    config.dtype = dtype
    shapes = reader.hf_tensor_shapes(config.vocab_size)
    with atomic_output_dir(out_dir) as tmp:
        writer = ShardedWeightWriter(tmp, shapes, dtype, fmt, parse_size(max_shard_size))  # type: ignore[arg-type]
        try:
            with OpenFiles() as files:
                sources = reader.iter_hf_sources(files, config.vocab_size)  # padding rows dropped
                for name, source in tqdm(sources, total=len(shapes), desc="megatron->hf",
                                         unit="tensor", disable=not progress, file=sys.stderr):
                    writer.write_source(name, source, files)
            writer.finish()
        except BaseException:
            writer.abort()
            raise
        config.save_pretrained(tmp)
        GenerationConfig(bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id).save_pretrained(tmp)
        tokenizer_files = (
            write_tokenizer_files(tokenizer_path, tmp, config.n_positions) if tokenizer_path else []
        )
        if not tokenizer_files:
            print("megatron_to_hf: warning: no tokenizer given (--tokenizer) and none recorded in the checkpoint's"
                  f" args is here: bos/eos are StarCoder's {config.bos_token_id} and the folder has no tokenizer"
                  " files (AutoTokenizer cannot load it)", file=sys.stderr)
        manifest = {
            "source": str(Path(megatron_dir).resolve()), "tag": reader.layout.tag, "iteration": reader.iteration,
            "tp": reader.layout.tp, "pp": reader.layout.pp,
            "vocab_size": config.vocab_size, "padded_vocab_size": reader.args.padded_vocab_size,
            "distributed_optimizer": reader.layout.dist_opt,
            "format": fmt, "dtype": str(dtype).removeprefix("torch."), "shards": writer.file_names,
            "total_bytes": writer.bytes_written, "tokenizer_files": tokenizer_files,
            "seconds": round(time.perf_counter() - started, 3),
        }
        write_record(tmp / HF_MODEL.record, HF_MODEL, tmp, facts=manifest)  # last: it lists every file above
    return Path(out_dir)


def load_hf_model_from_megatron(megatron_dir: str | Path, dtype: torch.dtype = torch.float32,
                                tokenizer: str | Path | None = None, tag: str | None = None) -> Any:
    """The checkpoint as an in-memory ``GPTBigCodeForCausalLM`` (eval mode), without writing files."""
    reader = MegatronReader(megatron_dir, tag)
    config = reader.hf_config(reader.tokenizer(tokenizer))
    config.dtype = dtype
    state = {name: tensor.to(dtype) for name, tensor in reader.iter_hf_tensors(config.vocab_size)}
    state[HF_TIED_HEAD] = state["transformer.wte.weight"]
    with parameters_on_meta():
        model = GPTBigCodeForCausalLM(config)
    model.load_state_dict(state, strict=True, assign=True)
    model.tie_weights()
    return model.to(dtype).eval()


@contextlib.contextmanager
def parameters_on_meta() -> Iterator[None]:
    """Modules built inside get their parameters on the meta device and their buffers as ``__init__`` makes them.

    Parameters are replaced by the checkpoint's tensors (``load_state_dict(assign=True)``), so allocating and
    initialising them would only cost time and memory. Buffers are another matter: non-persistent ones (the
    causal mask ``transformer.bias``) are in no state dict, so under ``torch.device("meta")`` they would stay
    data-less and ``model.to(device)`` would fail with "Cannot copy out of meta tensor". Moving each parameter
    to meta as it is registered (what ``accelerate.init_empty_weights(include_buffers=False)`` does) leaves
    the buffers real, computed by the model's own code.
    """
    register_parameter = torch.nn.Module.register_parameter

    def register_on_meta(module: torch.nn.Module, name: str, param: torch.nn.Parameter | None) -> None:
        register_parameter(module, name, param)
        if param is not None:
            kept = module._parameters[name]
            assert kept is not None
            module._parameters[name] = type(kept)(kept.to("meta"), requires_grad=kept.requires_grad)

    torch.nn.Module.register_parameter = register_on_meta  # type: ignore[method-assign]
    try:
        yield
    finally:
        torch.nn.Module.register_parameter = register_parameter  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    from runconfig import ConfigError, load_section
    from runconfig.conversion_section import ConversionConfig

    parser = argparse.ArgumentParser(prog="python -m conversion.megatron_to_hf", description=__doc__.split("\n")[0])
    parser.add_argument("--megatron", required=True, help="Megatron checkpoint root (holds the tracker file)")
    parser.add_argument("--out", required=True, help="Hugging Face output folder (replaced atomically)")
    parser.add_argument("--tokenizer", help="tokenizer.json or a Hugging Face tokenizer folder")
    parser.add_argument("--format", choices=["safetensors", "bin"])
    parser.add_argument("--dtype", choices=["auto", *sorted(DTYPES)],
                        help="output dtype (default from the run config, else auto: as the checkpoint stores it)")
    parser.add_argument("--max-shard-size", help="e.g. 2GB, 500MB, 1GiB")
    parser.add_argument("--tag", help="'release' or an iteration (default: the tracker's)")
    parser.add_argument("--config", help="run config YAML; its conversion: section gives the defaults")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("overrides", nargs="*", help="conversion.key=value overrides of the run config")
    ns = parser.parse_args(argv)
    try:
        cfg = load_section(ns.config, "conversion", ConversionConfig, ns.overrides)
        out = convert(
            ns.megatron, ns.out, tokenizer=ns.tokenizer or cfg.tokenizer or None,
            fmt=ns.format or cfg.format, dtype=DTYPES.get(ns.dtype or cfg.dtype),
            max_shard_size=ns.max_shard_size or cfg.max_shard_size, tag=ns.tag, progress=not ns.no_progress,
        )
    except (ConfigError, ValueError) as exc:  # OSError and interrupts: guardrails.command_errors
        print(f"megatron_to_hf: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_command(main))
