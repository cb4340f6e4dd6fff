"""Check a run before any job is queued: every problem at once, each naming the values and the fix.

Rules (``error`` stops the submission; ``warning`` and ``note`` are printed):

* grid: nodes x GPUs divisible by TP x PP; global batch divisible by micro batch x data-parallel size;
  heads divisible by TP; layers divisible by PP; seq length <= max positions;
* start checkpoint (the fork): its shape, TP and PP are the run's (else reshard with
  ``conversion.hf_to_megatron``); the tokenizer's vocab padded the fork's way (``make_vocab_size_divisible_by``
  x TP) equals its embedding rows; the distributed optimizer finds the files it loads;
* tokenizer: readable, with the pad token the fork looks up (``<fim-pad>``/``<fim_pad>``);
* pretraining (``training.mode: pretrain``): the raw-document dataset reads, its ids are below the vocab, it
  was made with ``training.tokenizer``, the FIM tokens are found by name; ``MEGATRON_DIR`` holds the ``multi-query-attention`` branch (``FIM_PAD``);
* split files: they parse; every prefix has both index files, readable, one dtype, token ids below the vocab,
  made with ``training.tokenizer`` (the sha256 its preprocess manifest records; a warning without a manifest);
  for the fork, relative prefixes resolve the same from the job's folder as from the split file's, and no index
  map next to the data is older than it or indexes other documents (``dataset.formats.index_map_files``: the fork
  reuses maps by name); validation does not overlap training (really, or through the fork's range bug);
* the fork, in the job's own environment (``training.cluster.fork_runtime``: the site env sourced as the job sources
  it): ``MEGATRON_DIR`` holds ``finetune_mtf.py`` and a ``megatron/arguments.py`` that accepts every flag of the
  argv (``training.fork_flags``); apex and its CUDA extensions import; the dataset helper is built or can be;
  the data folders and the checkout are writable; ``training.extra_args`` neither repeats a flag the config
  already sets nor switches to the ``--data-path`` mode;
* what the job will do (``note``): the schedule a resume continues with (``training.resume.schedule_resume``), the
  dtype ``auto`` resolves to.

    findings = run_preflight(run_config, os.environ)    # list[Finding]; run by ``training.launch preflight``
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from dataset.formats.index_map_files import stale_index_maps
from dataset.formats.indexed_dataset import IndexedDataset, IndexFormatError, data_file_path, index_file_path
from dataset.formats.preprocess_outputs import ROLES as DOCUMENT_ROLES, document_prefix
from dataset.splitting.packed_index import pair_lengths
from dataset.splitting.split_files import SplitFileError, parse_split_file, resolve_prefix
from dataset.formats.tokenizer_match import TokenizerMismatchError, check_data_tokenizer
from runconfig.model_presets import ModelShape
from runconfig.run_config import RunConfig
from conversion.vocab_padding import padded_vocab_size
from training.resume.recorded_args import RecordedCheckpoint, vocab_divisor_from_args


@dataclass(frozen=True)
class Finding:
    error: bool
    message: str
    note: bool = False  # neither a problem nor a risk: what will happen (printed as "note:")

    def __str__(self) -> str:
        return f"{'error' if self.error else 'note' if self.note else 'warning'}: {self.message}"


def check_grid(cfg: Any, nodes: int, gpus_per_node: int, shape: ModelShape | None) -> list[Finding]:
    """The process grid and the batch against the model (pure)."""
    found = []
    world, tp, pp = nodes * gpus_per_node, cfg.tensor_model_parallel_size, cfg.pipeline_model_parallel_size
    if world % (tp * pp):
        found.append(Finding(True, f"cluster.nodes x cluster.gpus_per_node = {nodes} x {gpus_per_node} = {world}"
                             f" GPUs is not divisible by TP x PP = {tp} x {pp}; change the node count or the"
                             " parallel sizes"))
    else:
        dp = world // (tp * pp)
        if cfg.global_batch_size % (cfg.micro_batch_size * dp):
            found.append(Finding(True, f"training.global_batch_size {cfg.global_batch_size} is not divisible by"
                                 f" micro_batch_size x data-parallel size = {cfg.micro_batch_size} x {dp}; use a"
                                 f" multiple of {cfg.micro_batch_size * dp}"))
    if shape is not None:
        if shape.num_attention_heads % tp:
            found.append(Finding(True, f"{shape.num_attention_heads} attention heads are not divisible by"
                                 f" tensor_model_parallel_size {tp}; pick a TP that divides them"))
        if shape.num_layers % pp:
            found.append(Finding(True, f"{shape.num_layers} layers are not divisible by"
                                 f" pipeline_model_parallel_size {pp}; pick a PP that divides them"))
        if cfg.seq_length > shape.max_position_embeddings:
            found.append(Finding(True, f"training.seq_length {cfg.seq_length} exceeds the model's"
                                 f" {shape.max_position_embeddings} positions; lower seq_length"))
    return found


def check_start_checkpoint(cfg: Any, shape: ModelShape, recorded: RecordedCheckpoint, vocab: int | None,
                           hf_hint: str = "HF_FOLDER") -> list[Finding]:
    """The checkpoint the fork loads against the run (pure, given what the checkpoint records)."""
    found = []
    where = f"{recorded.root} ({recorded.tag})"
    tp, pp = cfg.tensor_model_parallel_size, cfg.pipeline_model_parallel_size
    if (recorded.tp, recorded.pp) != (tp, pp):
        found.append(Finding(True, f"{where} is split TP={recorded.tp} PP={recorded.pp}, the run uses TP={tp}"
                             f" PP={pp}; reshard it: python -m conversion.hf_to_megatron --hf {hf_hint}"
                             f" --out NEW_FOLDER --tp {tp} --pp {pp}, then set training.load"))
    args = recorded.args
    for key in ("num_layers", "hidden_size", "num_attention_heads", "ffn_hidden_size", "max_position_embeddings"):
        have = args.get(key)
        if have is not None and have != getattr(shape, key):
            found.append(Finding(True, f"{where} records {key}={have}, the run's model has {getattr(shape, key)};"
                                 " set training.model to the checkpoint's preset (or empty to take its shape)"))
    if vocab is not None:
        divisor = vocab_divisor_from_args(args)
        padded = padded_vocab_size(vocab, divisor, tp)
        if padded != recorded.embedding_rows:
            found.append(Finding(True, f"the tokenizer's {vocab} tokens padded to a multiple of"
                                 f" make_vocab_size_divisible_by x TP = {divisor} x {tp} give {padded} rows, but"
                                 f" {where} has {recorded.embedding_rows} embedding rows; use the tokenizer the"
                                 " checkpoint was trained with, or reconvert it with this TP"))
    if cfg.use_distributed_optimizer and not recorded.dist_opt:
        found.append(Finding(True, f"training.use_distributed_optimizer is true but {where} has no model_rng.pt"
                             " files: the fork then looks for model_rng.pt and optim.pt and exits. Set"
                             " use_distributed_optimizer=false"))
    elif cfg.use_distributed_optimizer and not recorded.has_optimizer:
        found.append(Finding(False, f"{where} was saved with the distributed optimizer but holds no optim.pt:"
                             " the fork loads optim.pt even with --no-load-optim, so the first job may exit"
                             " with 'could not load the checkpoint'"))
    elif recorded.dist_opt and not cfg.use_distributed_optimizer:
        found.append(Finding(True, f"{where} was saved with the distributed optimizer (model_rng.pt) but"
                             " training.use_distributed_optimizer is false: the fork looks for"
                             " model_optim_rng.pt. Set use_distributed_optimizer=true"))
    return found


def check_tokenizer(path: str, needs_pad: bool = True) -> tuple[list[Finding], int | None]:
    """A readable tokenizer with the fork's pad token (unless ``training.pad_id`` gives the local engine one);
    returns its vocab size (the fork's ``len(tokenizer)``)."""
    from training.local.model_init import PAD_TOKENS, tokenizer_ids

    if not path:
        return [Finding(True, "training.tokenizer is empty; name the tokenizer.json the data was preprocessed with")], None
    try:
        ids = tokenizer_ids(Path(path))
    except ValueError as exc:
        return [Finding(True, str(exc))], None
    found = []
    if ids["pad"] is None and needs_pad:
        found.append(Finding(True, f"{path} has no pad token ({' or '.join(PAD_TOKENS)}); the fork pads packed"
                             " rows with it. Use the StarCoder tokenizer or add the token"))
    return found, int(ids["vocab_size"] or 0)


def check_splits(cfg: Any, vocab: int | None, fork: bool) -> list[Finding]:
    """Split files, their datasets, and train/valid overlap (real, or the fork's range bug)."""
    found: list[Finding] = []
    entries: dict[str, list[tuple[Any, Path]]] = {}
    for role, path in (("train", cfg.train_split_file), ("valid", cfg.valid_split_file)):
        if not path:
            if role == "train":
                found.append(Finding(True, "training.train_split_file is empty; write it with dataset.splits"))
            continue
        try:
            groups = parse_split_file(path, role)
        except (SplitFileError, FileNotFoundError, OSError) as exc:
            found.append(Finding(True, f"{path}: {exc}"))
            continue
        for group in groups:
            for d in group.datasets:
                prefix = resolve_prefix(d.prefix, path)
                if fork and not Path(d.prefix).is_absolute() and Path(d.prefix).resolve() != prefix:
                    found.append(Finding(True, f"{path}: prefix {d.prefix!r} is relative: the fork opens it from"
                                         f" the job's folder ({Path(d.prefix).resolve()}), not next to the split"
                                         f" file ({prefix}); write absolute prefixes"))
                entries.setdefault(role, []).append((d, prefix))
    dtypes: dict[str, list[str]] = {}
    sizes: dict[Path, int] = {}
    lengths: dict[Path, list[Any]] = {}  # per prefix, the inputs' and the targets' sequence sizes
    for d, prefix in (e for role in entries.values() for e in role):
        for key in DOCUMENT_ROLES:
            name = document_prefix(str(prefix), key)
            try:
                data = IndexedDataset(name)
            except (FileNotFoundError, IndexFormatError) as exc:
                found.append(Finding(True, f"{name}: {exc}; run dataset.preprocess for this prefix"))
                continue
            dtypes.setdefault(str(data.dtype), []).append(name)
            sizes[prefix] = len(data.doc_idx) - 1
            lengths.setdefault(prefix, []).append(data.sizes)
            top = data.max_token_id()
            if vocab is not None and top >= vocab:
                found.append(Finding(True, f"{name}: token id {top} is not below the tokenizer's {vocab} tokens;"
                                     " preprocess with training.tokenizer"))
    for prefix in dict.fromkeys(prefix for role in entries.values() for _, prefix in role):
        found += check_data_tokenizer_finding(prefix, cfg.tokenizer)
    if fork:
        pairs = {p: pair_lengths(*v) for p, v in lengths.items() if len(v) == 2 and len(v[0]) == len(v[1])}
        found += _stale_maps(sorted({p for role in entries.values() for _, p in role}), sizes, pairs,
                             cfg.seq_length + 1)  # finetune_mtf packs rows of seq_length + 1 tokens
    if len(dtypes) > 1:
        found.append(Finding(True, "the datasets mix token dtypes (" + "; ".join(
            f"{k}: {', '.join(v)}" for k, v in sorted(dtypes.items())) + "); preprocess them with one tokenizer"))
    found += _overlaps(entries, sizes, fork or cfg.legacy_split_offsets)
    return found


def check_data_tokenizer_finding(prefix: str | Path, tokenizer: str) -> list[Finding]:
    """``training.tokenizer`` against the one the data's manifest records (``dataset.formats.tokenizer_match``)."""
    if not tokenizer:
        return []
    try:
        warning = check_data_tokenizer(prefix, tokenizer)
    except TokenizerMismatchError as exc:
        return [Finding(True, str(exc))]
    except OSError:  # an unreadable tokenizer is check_tokenizer's finding
        return []
    return [Finding(False, warning.removeprefix("warning: "))] if warning else []


def _stale_maps(prefixes: Iterable[Path], sizes: Mapping[Path, int], lengths: Mapping[Path, Any],
                row_length: int) -> list[Finding]:
    """The fork's index maps next to each prefix that it would reuse although the data (or the row length, which
    their names do not hold) changed since."""
    found = []
    for prefix in prefixes:
        files = [f(document_prefix(str(prefix), role)) for role in DOCUMENT_ROLES
                 for f in (index_file_path, data_file_path)]
        for problem in stale_index_maps(str(prefix), files, sizes.get(prefix), lengths.get(prefix), row_length):
            found.append(Finding(True, f"stale index map {problem}: the fork would reuse it; delete it (the fork"
                                 " rebuilds the maps it does not find; dataset.preprocess removes them when it"
                                 " rewrites a prefix)"))
    return found


def _overlaps(entries: Mapping[str, list[tuple[Any, Path]]], sizes: Mapping[Path, int], from_zero: bool) -> list[Finding]:
    found = []
    for v, v_prefix in entries.get("valid", []):
        for t, t_prefix in entries.get("train", []):
            if v_prefix != t_prefix or v_prefix not in sizes:
                continue
            (vs, ve), (ts, te) = v.document_range(sizes[v_prefix]), t.document_range(sizes[t_prefix])
            if from_zero:  # the fork's packed dataset reads a range a:b as documents [0, b - a)
                vs, ve, ts, te = 0, ve - vs, 0, te - ts
            if max(vs, ts) < min(ve, te):
                found.append(Finding(True, f"validation documents [{vs}, {ve}) of {v_prefix} overlap the training"
                                     f" documents [{ts}, {te})" + (" as the fork reads them (it ignores a range's"
                                     " start)" if from_zero else "") + "; hold validation out in its own prefix"
                                     " (data.valid_fraction) and use 0:1 for both"))
    return found


def check_pretrain_data(cfg: Any, vocab: int | None) -> list[Finding]:
    """``training.pretrain.data_path``: a readable raw-document dataset below the vocab; FIM tokens by name."""
    p = cfg.pretrain
    if not p.data_path:
        return [Finding(True, "training.pretrain.data_path is empty; preprocess raw files with"
                        " dataset.preprocess --keys content --append-eod and name PREFIX_content_document")]
    found = []
    try:
        data = IndexedDataset(p.data_path)
    except (FileNotFoundError, IndexFormatError) as exc:
        return [Finding(True, f"{p.data_path}: {exc}; run dataset.preprocess --keys content --append-eod")]
    top = data.max_token_id()
    if vocab is not None and top >= vocab:
        found.append(Finding(True, f"{p.data_path}: token id {top} is not below the tokenizer's {vocab} tokens;"
                             " preprocess with training.tokenizer"))
    for problem in stale_index_maps(p.data_path, [index_file_path(p.data_path), data_file_path(p.data_path)]):
        found.append(Finding(True, f"stale index map {problem}: the fork would reuse it; delete it"))
    if p.fim_rate > 0 and cfg.tokenizer:
        from dataset.formats.text_tokenizer import TextTokenizer, TokenizerFileError
        from training.samples.fim import FimTokenError, lookup_fim_tokens

        try:
            lookup_fim_tokens(TextTokenizer(cfg.tokenizer), p.fim_split_sample or None)
        except (FimTokenError, TokenizerFileError) as exc:
            found.append(Finding(True, str(exc)))
    return found + check_data_tokenizer_finding(p.data_path, cfg.tokenizer)


def run_preflight(run: RunConfig, environ: Mapping[str, str]) -> list[Finding]:
    from training.cluster.fork_job import recorded_if_present, run_shape, start_point

    cfg, cluster = run.training, run.cluster
    fork = cfg.engine == "megatron"
    found: list[Finding] = []
    shape, recorded, start = None, None, None
    try:  # a refused save/load pair or an unreadable checkpoint is one problem; the other rules still run
        start = start_point(cfg.load, cfg.save)
        recorded = recorded_if_present(start.load)
        shape = run_shape(cfg.model, recorded, start.load) if (fork or recorded) else None
    except ValueError as exc:  # ResumeError and CheckpointFormatError are ValueErrors
        found.append(Finding(True, str(exc)))
    tokenizer_findings, vocab = (check_tokenizer(cfg.tokenizer, fork or cfg.pad_id < 0) if (fork or cfg.tokenizer)
                                 else ([], None))
    found += check_grid(cfg, cluster.nodes, cluster.gpus_per_node, shape)
    if fork and recorded is not None and shape is not None:
        found += check_start_checkpoint(cfg, shape, recorded, vocab)
    elif fork and shape is not None and start is not None:
        found.append(Finding(True, f"{start.load} holds no checkpoint (no tracker); prepare it with"
                             " conversion.hf_to_megatron or conversion.prepare_release"))
    found += tokenizer_findings
    if not fork:  # the local engine's own rules (a Hugging Face start model of any family, FSDP2, W&B)
        from training.local.hf_family.preflight_rules import check_local_start

        found += check_local_start(cfg, cluster.nodes, cluster.gpus_per_node, Finding)
    found += check_pretrain_data(cfg, vocab) if cfg.mode == "pretrain" else check_splits(cfg, vocab, fork)
    if fork:
        from training.cluster.fork_runtime import check_fork_runtime

        found += check_fork_runtime(run, environ, start, recorded, shape)
    return found
