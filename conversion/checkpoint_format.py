"""The BigCode Megatron-LM fork's checkpoint files on disk (DESIGN.md 2.4): names, tracker, safe load/save.

Layout of a checkpoint root ``DIR``::

    DIR/latest_checkpointed_iteration.txt        "release" or an iteration, no newline
    DIR/release/ or DIR/iter_0000250/
        mp_rank_{tp:02d}/model_optim_rng.pt              (pipeline size 1)
        mp_rank_{tp:02d}_{pp:03d}/model_optim_rng.pt     (pipeline size > 1)
        distributed optimizer: .../model_rng.pt plus mp_rank_..._{dp:03d}/optim.pt

Each ``.pt`` is a ``torch.save`` dict with ``args``, ``checkpoint_version``, ``iteration``, ``model`` and
optionally ``optimizer``, ``opt_param_scheduler``, ``rng_state``. Loading never unpickles arbitrary code:
``torch.load(weights_only=True)`` with an allow-list holding the fork's enums (stand-ins), the Namespace
and numpy's RNG-state types; any other global is refused with ``UnsafeCheckpointError``.

Library module, no command line.
"""
from __future__ import annotations

import errno
import os
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from conversion.fork_namespace import FORK_PICKLE_MODULE, stand_in_globals
from guardrails.atomic_files import atomic_path, write_text_atomic

TRACKER_NAME = "latest_checkpointed_iteration.txt"
MODEL_FILE = "model_optim_rng.pt"
DIST_OPT_MODEL_FILE = "model_rng.pt"
DIST_OPT_OPTIM_FILE = "optim.pt"
CHECKPOINT_VERSION = 3.0
_RANK_DIR = re.compile(r"^mp_rank_(\d{2})(?:_(\d{3}))?$")
# where torch's refusal turns to advice on loading the file anyway (allow-listing it, weights_only=False)
_UNSAFE_ADVICE = re.compile(r" was not an allowed global| Please use `torch\.serialization|weights_only")


class CheckpointFormatError(ValueError):
    """A checkpoint folder that does not follow the fork's layout; the message names the path."""


class UnsafeCheckpointError(CheckpointFormatError):
    """A checkpoint file whose pickle references a global outside the allow-list (refused, not run)."""


def read_tracker(root: str | Path) -> str:
    """``"release"`` or the iteration digits from ``root``'s tracker file."""
    path = Path(root) / TRACKER_NAME
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise CheckpointFormatError(
            f"{path}: cannot read the tracker file ({exc.strerror}); is {root} a Megatron checkpoint root?"
        ) from exc
    if text == "release" or (text.isdigit() and int(text) > 0):
        return text
    raise CheckpointFormatError(f"{path}: line 1 holds {text!r}; expected 'release' or an iteration > 0")


def write_tracker(root: str | Path, tag: str | int) -> None:
    """Write the tracker (no newline, like the fork) atomically."""
    tag = str(tag)
    if not (tag == "release" or (tag.isdigit() and int(tag) > 0)):
        raise ValueError(f"tracker tag must be 'release' or an iteration > 0, got {tag!r}")
    write_text_atomic(Path(root) / TRACKER_NAME, str(int(tag)) if tag != "release" else tag)


def tag_dir_name(tag: str | int) -> str:
    """``release`` or ``iter_{:07d}``; any other tag (``../../etc``, ``-3``) is a ``CheckpointFormatError``."""
    tag = str(tag)
    if tag == "release":
        return tag
    if not tag.isdigit():  # never a path: a tag names a folder inside the checkpoint root
        raise CheckpointFormatError(f"checkpoint tag {tag!r}: expected 'release' or an iteration number (e.g. 250)")
    return f"iter_{int(tag):07d}"


def rank_dir_name(tp_rank: int, pp_rank: int, pp_size: int) -> str:
    return f"mp_rank_{tp_rank:02d}" if pp_size == 1 else f"mp_rank_{tp_rank:02d}_{pp_rank:03d}"


def checkpoint_file_path(
    root: str | Path, tag: str | int, tp_rank: int, pp_rank: int, tp_size: int, pp_size: int,
    dist_opt: bool = False,
) -> Path:
    """Path of the model file of rank (tp_rank, pp_rank), exactly as the fork names it."""
    if not (0 <= tp_rank < tp_size and 0 <= pp_rank < pp_size):
        raise ValueError(f"rank ({tp_rank}, {pp_rank}) outside tp={tp_size} pp={pp_size}")
    name = DIST_OPT_MODEL_FILE if dist_opt else MODEL_FILE
    return Path(root) / tag_dir_name(tag) / rank_dir_name(tp_rank, pp_rank, pp_size) / name


def optimizer_file_path(
    root: str | Path, tag: str | int, tp_rank: int, pp_rank: int, pp_size: int, dp_rank: int
) -> Path:
    """Distributed-optimizer state of one data-parallel rank: ``mp_rank_..._{dp:03d}/optim.pt``."""
    return Path(root) / tag_dir_name(tag) / (
        f"{rank_dir_name(tp_rank, pp_rank, pp_size)}_{dp_rank:03d}"
    ) / DIST_OPT_OPTIM_FILE


@dataclass(frozen=True)
class CheckpointLayout:
    """What one ``release``/``iter_*`` folder holds: parallel sizes and whether the optimizer is split."""

    root: Path
    tag: str
    tp: int
    pp: int
    dist_opt: bool

    def model_file(self, tp_rank: int, pp_rank: int) -> Path:
        return checkpoint_file_path(self.root, self.tag, tp_rank, pp_rank, self.tp, self.pp, self.dist_opt)


def discover_layout(root: str | Path, tag: str | None = None) -> CheckpointLayout:
    """Find TP/PP sizes from the rank folders of ``tag`` (default: the tracker's) and check none is missing."""
    root = Path(root)
    asked = tag
    tag = tag or read_tracker(root)
    folder = root / tag_dir_name(tag)
    if not folder.is_dir():
        present = sorted(p.name for p in root.glob("iter_*")) + (["release"] if (root / "release").is_dir() else [])
        if asked:  # the caller named it (--iteration / --tag): the tracker has nothing to do with it
            raise CheckpointFormatError(f"{folder}: missing; {root} has no {tag_dir_name(tag)}"
                                        f" (it holds: {', '.join(present) or 'no iteration folder'})")
        raise CheckpointFormatError(f"{folder}: missing; the tracker in {root} points to it")
    ranks: set[tuple[int, int]] = set()
    pipelined: set[bool] = set()
    for child in folder.iterdir():
        match = _RANK_DIR.match(child.name)
        # Distributed-optimizer folders (``..._{dp:03d}``, only optim.pt) can look like pipeline ranks.
        holds_model = (child / MODEL_FILE).is_file() or (child / DIST_OPT_MODEL_FILE).is_file()
        if match and child.is_dir() and holds_model:
            ranks.add((int(match.group(1)), int(match.group(2) or 0)))
            pipelined.add(match.group(2) is not None)
    if not ranks:
        raise CheckpointFormatError(f"{folder}: no mp_rank_XX or mp_rank_XX_YYY folders with a model file")
    if len(pipelined) > 1:
        raise CheckpointFormatError(f"{folder}: mixes mp_rank_XX and mp_rank_XX_YYY folders")
    tp = max(r[0] for r in ranks) + 1
    pp = max(r[1] for r in ranks) + 1 if pipelined.pop() else 1
    missing = sorted({(t, p) for t in range(tp) for p in range(pp)} - ranks)
    if missing:
        t, p = missing[0]
        raise CheckpointFormatError(
            f"{folder / rank_dir_name(t, p, pp)}: missing, or holds no {MODEL_FILE} / {DIST_OPT_MODEL_FILE}"
            f" (the other folders imply tp={tp} pp={pp})"
        )
    first = folder / rank_dir_name(0, 0, pp)
    dist_opt = not (first / MODEL_FILE).exists() and (first / DIST_OPT_MODEL_FILE).exists()
    layout = CheckpointLayout(root, tag, tp, pp, dist_opt)
    for t in range(tp):
        for p in range(pp):
            if not layout.model_file(t, p).is_file():
                raise CheckpointFormatError(f"{layout.model_file(t, p)}: missing model file")
    return layout


def _numpy_globals() -> list[tuple[Any, str]]:
    """numpy types in ``rng_state`` (``np.random.get_state()``), under numpy 1.x and 2.x names."""
    multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    pairs: list[tuple[Any, str]] = [
        (multiarray._reconstruct, "numpy.core.multiarray._reconstruct"),
        (multiarray._reconstruct, "numpy._core.multiarray._reconstruct"),
        (multiarray.scalar, "numpy.core.multiarray.scalar"),  # numpy scalars (e.g. a float64 in args)
        (multiarray.scalar, "numpy._core.multiarray.scalar"),
        (np.ndarray, "numpy.ndarray"),
        (np.dtype, "numpy.dtype"),
    ]
    for code in ("u4", "i4", "i8", "u8", "f8", "f4", "u1", "i1", "b1", "i2", "u2", "f2"):
        dtype_cls = type(np.dtype(code))
        pairs.append((dtype_cls, f"numpy.dtypes.{dtype_cls.__name__}"))
    return pairs


def allowed_globals() -> list[tuple[Any, str]]:
    """Everything a fork checkpoint may reference besides torch's own tensor machinery."""
    return stand_in_globals() + _numpy_globals()


def load_checkpoint_file(path: str | Path, mmap: bool = False, meta: bool = False) -> dict[str, Any]:
    """Load one checkpoint ``.pt`` safely (no arbitrary code); ``mmap`` maps tensors lazily (zip format).

    ``meta=True`` reads no tensor data at all: tensors come back on the meta device and their storages
    carry ``_checkpoint_offset``, the byte offset of their data in the file (see ``tensor_source``).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointFormatError(f"{path}: checkpoint file not found")
    use_mmap = mmap and not meta and zipfile.is_zipfile(path)  # legacy (pre-1.6) files cannot be mapped
    try:
        with torch.serialization.safe_globals(allowed_globals()):
            obj = torch.load(path, map_location="meta" if meta else "cpu", weights_only=True, mmap=use_mmap)
    except pickle.UnpicklingError as exc:
        raise UnsafeCheckpointError(
            f"{path}: refused to unpickle (only tensors, plain containers, argparse.Namespace and the fork's"
            f" enums are allowed; nothing was executed): {_offending_global(exc)}"
        ) from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile) as exc:
        raise CheckpointFormatError(f"{path}: not a readable torch checkpoint ({_first_line(exc)})") from exc
    if not isinstance(obj, dict):
        raise CheckpointFormatError(f"{path}: expected a dict of checkpoint keys, got {type(obj).__name__}")
    return obj


def save_checkpoint_file(path: str | Path, obj: dict[str, Any]) -> None:
    """``torch.save`` to a temporary name then rename; fork enums are pickled under the fork's names."""
    with atomic_path(path) as tmp:  # a file name, not a handle: torch names the zip's records after it
        try:
            torch.save(obj, tmp, pickle_module=FORK_PICKLE_MODULE)
        except RuntimeError as exc:  # torch reports a failed write as "unexpected pos" / "file write failed"
            raise _write_error(Path(path), exc) from exc


def _write_error(path: Path, exc: RuntimeError) -> BaseException:
    """torch's failed-write ``RuntimeError`` as the ``OSError`` it stands for (full disk), naming ``path``."""
    text = str(exc)
    if not any(marker in text for marker in ("unexpected pos", "file write failed", "PytorchStreamWriter",
                                             "iostream error")):
        return exc
    stats = os.statvfs(path.parent)
    if stats.f_bavail * stats.f_frsize > 64 << 20:
        return OSError(errno.EIO, f"torch.save could not write the file ({_first_line(exc)})", str(path))
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def _offending_global(exc: BaseException) -> str:
    """The line of torch's message that names the refused global (its first line is generic advice)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if "GLOBAL" in line or "global" in line.lower() or "unrecognized" in line or "Unsupported" in line:
            # torch goes on to advise allow-listing the class (add_safe_globals): never advise unsafe loading
            return _UNSAFE_ADVICE.split(line, maxsplit=1)[0].rstrip(" .")
    return lines[-1] if lines else type(exc).__name__


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
