"""Stream a Megatron checkpoint (any TP/PP, plain or distributed-optimizer layout) as Hugging Face tensors.

``MegatronReader(root).iter_hf_sources()`` yields ``(hf_name, TensorSource)`` in output order: ``wte``,
``wpe``, layer 0..L-1, ``ln_f``. A source says which byte ranges of which TP shard files make up the merged
tensor (``conversion.tensor_source``); the shard files are only indexed (``torch.load`` on the meta device
reads no tensor data), so memory holds at most the tensor being assembled, whatever the model size.
``iter_hf_tensors()`` materializes each source. Shapes are checked against the checkpoint's ``args``
(``hf_tensor_shapes``, ``megatron_shard_shapes``) and replicated copies must agree byte for byte, so a
truncated or inconsistent shard is an error naming the file and parameter, never a silently wrong model.

Library module, no command line.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Iterator

import torch

from conversion.checkpoint_format import (
    CheckpointFormatError, CheckpointLayout, discover_layout, load_checkpoint_file,
)
from conversion.fork_namespace import ForkArgsError, hf_config_from_args
from conversion.key_map import (
    EMBEDDING_KEYS, FINAL_NORM_KEYS, HEAD_KEY, HF_LAYER_PREFIX, HF_LAYER_SUFFIXES, MEGATRON_LAYER_PREFIX,
    MEGATRON_LAYER_SUFFIXES, flatten_model, megatron_layer_to_hf, stage_keys, stage_layers,
)
from conversion.tensor_parallel import split_dim
from conversion.tensor_source import OpenFiles, Piece, Segment, TensorSource, first_rows, materialize, same_bytes
from conversion.tokenizer_files import special_token_ids
from conversion.vocab_padding import (
    DEFAULT_DIVISIBLE_BY, TRUE_VOCAB_ARG, VocabPaddingError, real_vocab_size, tokenizer_rows_problem,
    tokenizer_vocab_size,
)
from dataset.tokenizer_match import TokenizerMismatchError, check_same_tokenizer


_FORK_TOP_LEVEL = ("args", "checkpoint_version", "iteration", "model", "optimizer", "opt_param_scheduler",
                   "rng_state")


def _dims(args: argparse.Namespace) -> tuple[int, int, int, int, int, int]:
    hidden = args.hidden_size
    heads = args.num_attention_heads
    head_dim = getattr(args, "kv_channels", None) or hidden // heads
    ffn = getattr(args, "ffn_hidden_size", None) or 4 * hidden
    return args.padded_vocab_size, args.max_position_embeddings, hidden, ffn, head_dim, args.num_layers


def hf_tensor_shapes(args: argparse.Namespace, vocab_size: int | None = None) -> dict[str, tuple[int, ...]]:
    """Every HF tensor (lm_head excluded: tied) and its shape, in the order the reader yields them;
    ``vocab_size`` rows of the word embeddings (default: all ``args.padded_vocab_size`` rows)."""
    padded, positions, hidden, _, _, layers = _dims(args)
    vocab = vocab_size or padded
    # The Megatron layer's shapes through the same name map the tensors take (c_attn stacks query, key_value).
    per_layer = megatron_layer_to_hf(megatron_layer_shapes(args), _stacked_shape)
    shapes: dict[str, tuple[int, ...]] = {
        "transformer.wte.weight": (vocab, hidden), "transformer.wpe.weight": (positions, hidden),
    }
    for layer in range(layers):
        for suffix in HF_LAYER_SUFFIXES:
            shapes[HF_LAYER_PREFIX.format(layer=layer) + suffix] = per_layer[suffix]
    shapes["transformer.ln_f.weight"] = (hidden,)
    shapes["transformer.ln_f.bias"] = (hidden,)
    return shapes


def _stacked_shape(shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
    """The shape of tensors of ``shapes`` joined along dim 0."""
    return (sum(shape[0] for shape in shapes),) + shapes[0][1:]


def megatron_layer_shapes(args: argparse.Namespace) -> dict[str, tuple[int, ...]]:
    """Full (unsplit) shapes of one Megatron layer's parameters, keyed by Megatron suffix."""
    _, _, hidden, ffn, head_dim, _ = _dims(args)
    return {
        "self_attention.query.weight": (hidden, hidden), "self_attention.query.bias": (hidden,),
        "self_attention.key_value.weight": (2 * head_dim, hidden), "self_attention.key_value.bias": (2 * head_dim,),
        "input_layernorm.weight": (hidden,), "input_layernorm.bias": (hidden,),
        "self_attention.dense.weight": (hidden, hidden), "self_attention.dense.bias": (hidden,),
        "post_attention_layernorm.weight": (hidden,), "post_attention_layernorm.bias": (hidden,),
        "mlp.dense_h_to_4h.weight": (ffn, hidden), "mlp.dense_h_to_4h.bias": (ffn,),
        "mlp.dense_4h_to_h.weight": (hidden, ffn), "mlp.dense_4h_to_h.bias": (hidden,),
    }


def megatron_shard_shapes(args: argparse.Namespace, tp: int, pp: int, stage: int) -> dict[str, tuple[int, ...]]:
    """Flat Megatron names (stage-local layer numbers) and shapes one TP rank of ``stage`` must hold."""
    vocab, positions, hidden, _, _, layers = _dims(args)
    full = megatron_layer_shapes(args)
    shapes: dict[str, tuple[int, ...]] = {}
    for name in stage_keys(stage, pp):
        if name.endswith("position_embeddings.weight"):
            shapes[name] = (positions, hidden)
        elif name.endswith("word_embeddings.weight") or name == HEAD_KEY:
            shapes[name] = (vocab, hidden)
        else:
            shapes[name] = (hidden,)
    for local in range(len(stage_layers(layers, pp, stage))):
        for suffix in MEGATRON_LAYER_SUFFIXES:
            shapes[MEGATRON_LAYER_PREFIX.format(layer=local) + suffix] = full[suffix]
    return {name: megatron_shard_shape(name, shape, tp) for name, shape in shapes.items()}


class MegatronReader:
    """One ``release``/``iter_*`` checkpoint, indexed once and read a tensor at a time."""

    def __init__(self, root: str | Path, tag: str | None = None) -> None:
        self.layout: CheckpointLayout = discover_layout(root, tag)
        first_path = self.layout.model_file(0, 0)
        first = load_checkpoint_file(first_path, mmap=True)  # mapped: only what is used gets read
        for key in ("args", "model"):
            if key not in first:
                raise CheckpointFormatError(f"{first_path}: top-level key {key!r} missing")
        self.args: argparse.Namespace = first["args"]
        self.iteration: int = int(first.get("iteration", 0) or 0)
        self.checkpoint_version = first.get("checkpoint_version")
        self.optimizer = first.get("optimizer")
        self.opt_param_scheduler = first.get("opt_param_scheduler")
        self.rng_state = first.get("rng_state")
        # top-level entries beyond the fork's own (e.g. the local engine's ``fork_resume``, ``local_engine``)
        self.extra: dict[str, Any] = {key: value for key, value in first.items() if key not in _FORK_TOP_LEVEL}
        del first
        self._check_args(first_path)
        self._index: dict[tuple[int, int], dict[str, Piece]] = {}

    def _check_args(self, where: Path) -> None:
        for name in ("num_layers", "hidden_size", "num_attention_heads", "padded_vocab_size",
                     "max_position_embeddings"):
            if not hasattr(self.args, name):
                raise CheckpointFormatError(f"{where}: args lack {name!r}; cannot describe the model")
        for name, found in (("tensor_model_parallel_size", self.layout.tp),
                            ("pipeline_model_parallel_size", self.layout.pp)):
            declared = getattr(self.args, name, found)
            if declared != found:
                raise CheckpointFormatError(
                    f"{where}: args.{name}={declared} but the folder holds {found} rank(s) for it"
                )
        if self.checkpoint_version is not None and float(self.checkpoint_version) < 2.0:
            raise CheckpointFormatError(
                f"{where}: checkpoint_version {self.checkpoint_version} < 2.0 stores QKV in an older order;"
                " load and re-save it with the fork first"
            )

    def hf_tensor_shapes(self, vocab_size: int | None = None) -> dict[str, tuple[int, ...]]:
        return hf_tensor_shapes(self.args, vocab_size)

    def tokenizer(self, explicit: str | Path | None = None) -> Path | None:
        """``explicit`` when given, else the tokenizer the checkpoint records (``args.tokenizer_file``) if it is here.

        An ``explicit`` tokenizer other than a recorded one that is here is refused (``dataset.tokenizer_match``);
        ``hf_config`` checks any tokenizer against the embedding rows.
        """
        recorded = getattr(self.args, "tokenizer_file", None)
        if explicit:
            check_same_tokenizer(recorded, explicit, f"the checkpoint {self.layout.root}")
            return Path(explicit)
        return Path(recorded) if recorded and Path(recorded).exists() else None

    def hf_config(self, tokenizer: Path | None) -> Any:
        """The ``GPTBigCodeConfig`` of this checkpoint, bos/eos from ``tokenizer`` (StarCoder's 0 without one).

        Its ``vocab_size`` is the real vocab (``conversion.vocab_padding.real_vocab_size``: the recorded
        ``args.true_vocab_size``, else the tokenizer's size); pass it to ``iter_hf_sources`` to drop the padding rows.
        """
        bos, eos = special_token_ids(tokenizer)
        where = self.layout.model_file(0, 0)
        if tokenizer is not None:  # another tokenizer would give every id another token, silently
            problem = tokenizer_rows_problem(
                tokenizer_vocab_size(tokenizer), self.args.padded_vocab_size, getattr(self.args, TRUE_VOCAB_ARG, None),
                getattr(self.args, "make_vocab_size_divisible_by", None) or DEFAULT_DIVISIBLE_BY, self.layout.tp)
            if problem:
                raise TokenizerMismatchError(f"the tokenizer {tokenizer} is not the one {where} was trained with: it"
                                             f" has {problem}; give the model's own tokenizer")
        try:
            vocab, warning = real_vocab_size(
                self.args.padded_vocab_size, getattr(self.args, TRUE_VOCAB_ARG, None),
                tokenizer_vocab_size(tokenizer) if tokenizer is not None else None)
            if warning:
                print(f"warning: {where}: {warning}", file=sys.stderr)
            return hf_config_from_args(self.args, bos, eos, vocab)
        except (ForkArgsError, VocabPaddingError) as exc:
            raise CheckpointFormatError(f"{where}: args: {exc}") from exc

    def stored_dtype(self) -> torch.dtype:
        """The dtype the checkpoint stores its weights in (that of the first shard's first parameter)."""
        return next(iter(self._pieces(0, 0).values())).dtype

    def _pieces(self, tp_rank: int, stage: int) -> dict[str, Piece]:
        """Where each parameter of one shard file lives (indexed without reading tensor data)."""
        key = (tp_rank, stage)
        if key not in self._index:
            path = self.layout.model_file(tp_rank, stage)
            ckpt = load_checkpoint_file(path, meta=True)
            if "model" not in ckpt:
                raise CheckpointFormatError(f"{path}: top-level key 'model' missing")
            self._index[key] = {
                name: Piece.of_meta_tensor(path, name, tensor)
                for name, tensor in flatten_model(ckpt["model"]).items() if isinstance(tensor, torch.Tensor)
            }
        return self._index[key]

    def _source(self, files: OpenFiles, stage: int, name: str, full_shape: tuple[int, ...]) -> TensorSource:
        """The merged tensor ``name`` of ``stage`` as byte ranges of its TP shards, checked against the args."""
        expected = megatron_shard_shape(name, full_shape, self.layout.tp)
        pieces = []
        for tp_rank in range(self.layout.tp):
            index = self._pieces(tp_rank, stage)
            path = self.layout.model_file(tp_rank, stage)
            if name not in index:
                raise CheckpointFormatError(f"{path}: parameter {name!r} missing from the model dict")
            piece = index[name]
            if piece.shape != expected:
                raise CheckpointFormatError(
                    f"{path}: {name} has shape {piece.shape}, expected {expected} from the checkpoint args"
                )
            if piece.offset + piece.nbytes > path.stat().st_size:
                raise CheckpointFormatError(f"{path}: {name} runs past the end of the file; the shard is truncated")
            pieces.append(piece)
        dim = split_dim(name)
        if dim is None:
            for rank, piece in enumerate(pieces[1:], start=1):
                if not same_bytes(files, pieces[0], piece):
                    raise CheckpointFormatError(
                        f"{piece.path}: replicated parameter {name} differs from TP rank 0's copy; the checkpoint"
                        f" is inconsistent (rank {rank})"
                    )
            return TensorSource((Segment((pieces[0],), 0),))
        odd = next((p for p in pieces if p.dtype != pieces[0].dtype), None)
        if odd is not None:
            raise CheckpointFormatError(
                f"{odd.path}: {name} is {odd.dtype} but {pieces[0].dtype} in {pieces[0].path}; TP shards must agree"
            )
        return TensorSource((Segment(tuple(pieces), dim),))

    def iter_hf_sources(self, files: OpenFiles, vocab_size: int | None = None
                        ) -> Iterator[tuple[str, TensorSource]]:
        """(HF name, byte source of the merged tensor) in ``hf_tensor_shapes`` order; the word embeddings
        keep their first ``vocab_size`` rows (default: all, padding included)."""
        shapes = self.hf_tensor_shapes()
        for hf_name, megatron_name in EMBEDDING_KEYS.items():
            source = self._source(files, 0, megatron_name, shapes[hf_name])
            if hf_name == "transformer.wte.weight" and vocab_size is not None:
                source = first_rows(source, vocab_size)
            yield hf_name, source
        full_shapes = megatron_layer_shapes(self.args)
        for stage in range(self.layout.pp):
            for local, layer in enumerate(stage_layers(self.args.num_layers, self.layout.pp, stage)):
                prefix = MEGATRON_LAYER_PREFIX.format(layer=local)
                megatron_layer = {
                    suffix: self._source(files, stage, prefix + suffix, full_shapes[suffix])
                    for suffix in MEGATRON_LAYER_SUFFIXES
                }
                for suffix, source in megatron_layer_to_hf(megatron_layer, _join_sources).items():
                    yield HF_LAYER_PREFIX.format(layer=layer) + suffix, source
        last = self.layout.pp - 1
        for hf_name, megatron_name in FINAL_NORM_KEYS.items():
            yield hf_name, self._source(files, last, megatron_name, shapes[hf_name])
        if self.layout.pp > 1:
            self._check_tied_head(files, shapes["transformer.wte.weight"])

    def iter_hf_tensors(self, vocab_size: int | None = None) -> Iterator[tuple[str, torch.Tensor]]:
        """(HF name, full tensor) in ``hf_tensor_shapes`` order, one tensor read at a time."""
        with OpenFiles() as files:
            for name, source in self.iter_hf_sources(files, vocab_size):
                yield name, materialize(files, source)

    def _check_tied_head(self, files: OpenFiles, shape: tuple[int, ...]) -> None:
        """The last stage's head copy must equal the embeddings: HF ties them, so a difference would be lost."""
        head = self._source(files, self.layout.pp - 1, HEAD_KEY, shape).segments[0].pieces
        embeddings = self._source(files, 0, EMBEDDING_KEYS["transformer.wte.weight"], shape).segments[0].pieces
        if not all(same_bytes(files, a, b) for a, b in zip(head, embeddings)):
            raise CheckpointFormatError(
                f"{head[0].path}: {HEAD_KEY} differs from the first stage's word embeddings; GPT-BigCode ties"
                " them, so this checkpoint cannot be converted without losing weights"
            )


def _join_sources(parts: list[TensorSource]) -> TensorSource:
    return TensorSource(tuple(segment for part in parts for segment in part.segments))


def megatron_shard_shape(name: str, full_shape: tuple[int, ...], tp: int) -> tuple[int, ...]:
    """The shape one TP rank holds of the parameter ``name`` whose merged shape is ``full_shape``."""
    dim = split_dim(name)
    if dim is None:
        return tuple(full_shape)
    if full_shape[dim] % tp:
        raise CheckpointFormatError(f"{name}: size {full_shape[dim]} on dim {dim} is not divisible by tp={tp}")
    return tuple(full_shape[:dim]) + (full_shape[dim] // tp,) + tuple(full_shape[dim + 1:])
