"""Lazy, bounded-memory reader of Hugging Face checkpoint folders, whatever their layout.

Handles the four layouts ``from_pretrained`` reads: ``model.safetensors``, ``model.safetensors.index.json`` +
shards, ``pytorch_model.bin`` and ``pytorch_model.bin.index.json`` + shards (safetensors wins when both are
present, as in transformers). Keys, shapes and dtypes come from the safetensors JSON header or from a
memory-mapped, ``weights_only`` ``torch.load`` of a ``.bin`` shard, so no tensor data is read to list them.
Tensors come back one at a time as zero-copy views onto memory-mapped files: the reader itself keeps no
tensor alive, only open file mappings (at most ``BIN_SHARDS_OPEN`` ``.bin`` shards at a time). The reader is
a read-only ``Mapping`` of name -> tensor, so code written for a state dict (``conversion.hf_to_megatron``)
takes it as is and reads one tensor at a time.

Library use (no command line of its own; ``python -m conversion.verify shards A B`` and
``python -m conversion.hf_to_megatron`` are built on it):

    with HFCheckpointReader("out/hf") as ckpt:
        for name in ckpt.keys():
            print(name, ckpt.info(name).shape, ckpt.info(name).dtype)
        wte = ckpt.get_tensor("transformer.wte.weight")
"""
from __future__ import annotations

import json
import math
import struct
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Literal

import numpy as np
import torch

from conversion.checkpoint_format import CheckpointFormatError, load_checkpoint_file
from runconfig.strict_json import StrictJSONError, read_json_strict

SAFETENSORS_SINGLE = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
BIN_SINGLE = "pytorch_model.bin"
BIN_INDEX = "pytorch_model.bin.index.json"
# A .bin shard stays mapped while neighbouring keys are read; a couple is enough for a pairwise walk.
BIN_SHARDS_OPEN = 2
# Keys a config may declare tied (and so legitimately omit): GPT-BigCode's head is the embedding.
TIED_KEYS = {"lm_head.weight": "transformer.wte.weight"}

_SAFETENSORS_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool, "U16": torch.uint16, "U32": torch.uint32, "U64": torch.uint64,
    "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
}

Layout = Literal["safetensors", "bin"]


class CheckpointError(ValueError):
    """A checkpoint folder or file that cannot be read; the message names the file and how to fix it."""


@dataclass(frozen=True)
class TensorInfo:
    """What is known about a stored tensor without reading its data."""

    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    shard: str  # file name inside the checkpoint folder

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.")


def detect_layout(path: Path) -> tuple[Layout, Path | None, Path | None]:
    """Return (layout, index file or None, single weights file or None) for a folder or a weights file."""
    if path.is_file():
        name = path.name
        if name.endswith(".index.json"):
            return ("safetensors" if ".safetensors" in name else "bin"), path, None
        if name.endswith(".safetensors"):
            return "safetensors", None, path
        if name.endswith((".bin", ".pt", ".pth")):
            return "bin", None, path
        raise CheckpointError(f"{path}: not a .safetensors, .bin or *.index.json file")
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such checkpoint folder or file")
    for name, layout, is_index in (
        (SAFETENSORS_INDEX, "safetensors", True), (SAFETENSORS_SINGLE, "safetensors", False),
        (BIN_INDEX, "bin", True), (BIN_SINGLE, "bin", False),
    ):
        if (path / name).is_file():
            return layout, (path / name if is_index else None), (None if is_index else path / name)
    raise CheckpointError(
        f"{path}: no weights found; expected one of {SAFETENSORS_INDEX}, {SAFETENSORS_SINGLE}, "
        f"{BIN_INDEX}, {BIN_SINGLE} (a Hugging Face save_pretrained folder)"
    )


def read_safetensors_header(path: Path) -> tuple[int, dict[str, Any]]:
    """Return (offset of the data section, header dict) of a safetensors file, reading only the header."""
    try:
        with open(path, "rb") as handle:
            raw_size = handle.read(8)
            if len(raw_size) != 8:
                raise CheckpointError(f"{path}: too short for a safetensors file (no 8-byte header size)")
            (header_size,) = struct.unpack("<Q", raw_size)
            if header_size > path.stat().st_size - 8:
                raise CheckpointError(f"{path}: header size {header_size} exceeds the file; truncated file?")
            header = json.loads(handle.read(header_size))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable safetensors header ({exc})") from exc
    header.pop("__metadata__", None)
    return 8 + header_size, header


def _read_index(index_path: Path) -> dict[str, str]:
    try:
        weight_map = read_json_strict(index_path)["weight_map"]
    except StrictJSONError as exc:
        raise CheckpointError(str(exc)) from exc
    except (OSError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise CheckpointError(
            f"{index_path}: not a valid index ({exc!r}); it needs a top-level \"weight_map\": {{key: shard file}}"
        ) from exc
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise CheckpointError(f"{index_path}: field \"weight_map\" must map tensor names to shard file names")
    for key, shard in weight_map.items():
        if not (index_path.parent / shard).is_file():
            raise CheckpointError(f"{index_path}: weight_map[\"{key}\"] names shard {shard}, which is missing")
    return weight_map


def _load_bin_shard(path: Path) -> dict[str, torch.Tensor]:
    """Map a torch .bin shard without unpickling arbitrary objects and without reading data.

    The loading is the fork checkpoints' safe loader (``weights_only`` with an allow-list, memory-mapped,
    legacy pre-zip files read whole): one way to open a ``torch.save`` file in the whole package.
    """
    try:
        state = load_checkpoint_file(path, mmap=True)
    except CheckpointFormatError as exc:  # "refused to unpickle ..." or "not a readable torch checkpoint ..."
        raise CheckpointError(str(exc)) from exc
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a flat dict of tensor name -> tensor (a state_dict shard)")
    return state


def _safetensors_entry(path: Path, name: str, meta: Any, data_bytes: int) -> tuple[tuple[int, ...], torch.dtype]:
    """Shape and dtype of one header entry, after checking its byte range lies in the file and fits its shape."""
    try:
        dtype = _SAFETENSORS_DTYPES[meta["dtype"]]
        shape = tuple(int(d) for d in meta["shape"])
        begin, end = (int(x) for x in meta["data_offsets"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: header entry {name!r} needs a known \"dtype\", a \"shape\" and "
                              f"\"data_offsets\" [begin, end] (got {meta!r})") from exc
    expected = math.prod(shape) * dtype.itemsize
    if not 0 <= begin <= end <= data_bytes or end - begin != expected:
        raise CheckpointError(f"{path}: tensor {name!r} data_offsets [{begin}, {end}] do not hold {expected} bytes "
                              f"inside the {data_bytes}-byte data section; the file is truncated or corrupt")
    return shape, dtype


class HFCheckpointReader(Mapping[str, torch.Tensor]):
    """Lists and serves the tensors of one Hugging Face checkpoint, lazily and one at a time."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.layout, self.index_path, single = detect_layout(self.path)
        self.folder = self.path if self.path.is_dir() else self.path.parent
        self.config: dict[str, Any] | None = self._read_config()
        self._infos: dict[str, TensorInfo] = {}
        self._safetensors: dict[str, tuple[int, dict[str, Any]]] = {}  # shard -> (data offset, header)
        self._maps: dict[str, np.memmap] = {}
        self._bin_open: OrderedDict[str, dict[str, torch.Tensor]] = OrderedDict()
        if self.index_path is not None:
            weight_map = _read_index(self.index_path)
            shards = sorted(set(weight_map.values()))
        else:
            assert single is not None
            weight_map, shards = {}, [single.name]
        for shard in shards:
            self._list_shard(shard, weight_map)
        self._shard_ranks = {shard: rank for rank, shard in enumerate(shards)}

    def _read_config(self) -> dict[str, Any] | None:
        config_path = self.folder / "config.json"
        if not config_path.is_file():
            return None
        try:
            return read_json_strict(config_path)
        except StrictJSONError as exc:  # malformed, or a key given twice (json would keep the last silently)
            raise CheckpointError(str(exc)) from exc

    def _list_shard(self, shard: str, weight_map: dict[str, str]) -> None:
        path = self.folder / shard
        expected = {k for k, v in weight_map.items() if v == shard} if weight_map else None
        if self.layout == "safetensors":
            data_start, header = read_safetensors_header(path)
            self._safetensors[shard] = (data_start, header)
            data_bytes = path.stat().st_size - data_start
            found = {name: _safetensors_entry(path, name, meta, data_bytes) for name, meta in header.items()}
        else:
            state = self._bin_shard(shard)
            found = {name: (tuple(t.shape), t.dtype) for name, t in state.items()}
        missing = sorted(expected - found.keys()) if expected is not None else []
        if missing:
            raise CheckpointError(f"{self.index_path}: maps {missing[:3]} to {shard}, but that shard lacks them")
        for name, (shape, dtype) in sorted(found.items()):
            if expected is None or name in expected:  # the index is the truth, as in from_pretrained
                self._infos[name] = TensorInfo(name, shape, dtype, shard)

    def _bin_shard(self, shard: str) -> dict[str, torch.Tensor]:
        if shard in self._bin_open:
            self._bin_open.move_to_end(shard)
            return self._bin_open[shard]
        state = _load_bin_shard(self.folder / shard)
        self._bin_open[shard] = state
        while len(self._bin_open) > BIN_SHARDS_OPEN:
            self._bin_open.popitem(last=False)
        return state

    # ----- listing -----
    def keys(self) -> list[str]:  # type: ignore[override]  # a list: storage order matters to callers
        """Tensor names in storage order: shard by shard, sorted within a shard."""
        return list(self._infos)

    def __contains__(self, name: object) -> bool:
        return name in self._infos

    def __iter__(self) -> Iterator[str]:
        return iter(self._infos)

    def __len__(self) -> int:
        return len(self._infos)

    def info(self, name: str) -> TensorInfo:
        try:
            return self._infos[name]
        except KeyError:
            raise KeyError(f"{self.path}: no tensor named {name!r}") from None

    def shard_rank(self, name: str) -> int:
        """Position of the tensor's shard among this checkpoint's shards (for walking files in order)."""
        return self._shard_ranks[self.info(name).shard]

    def tied_alias(self, name: str) -> str | None:
        """The stored key a missing ``name`` stands for when config.json ties it (transformers' default)."""
        target = TIED_KEYS.get(name)
        if target is None or name in self._infos or target not in self._infos or self.config is None:
            return None
        return target if self.config.get("tie_word_embeddings", True) else None

    # ----- data (zero-copy views; the caller owns them, the reader keeps none) -----
    def raw_bytes(self, name: str) -> np.ndarray:
        """The tensor's bytes as stored (little-endian, row-major), a uint8 view onto the mapped file."""
        info = self.info(name)
        if self.layout == "safetensors":
            data_start, header = self._safetensors[info.shard]
            begin, end = header[name]["data_offsets"]
            return self._memmap(info.shard)[data_start + begin:data_start + end]
        tensor = self._bin_shard(info.shard)[name]
        return tensor.contiguous().reshape(-1).view(torch.uint8).numpy()

    def flat_tensor(self, name: str) -> torch.Tensor:
        """The tensor flattened to 1-D, zero-copy where the file layout allows it."""
        info = self.info(name)
        if self.layout == "bin":
            return self._bin_shard(info.shard)[name].reshape(-1)
        return torch.from_numpy(self.raw_bytes(name)).view(info.dtype)

    def get_tensor(self, name: str) -> torch.Tensor:
        return self.flat_tensor(name).reshape(self.info(name).shape)

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.get_tensor(name)

    def _memmap(self, shard: str) -> np.memmap:
        if shard not in self._maps:
            # Copy-on-write mapping: writable for torch.from_numpy, yet the file is never modified.
            self._maps[shard] = np.memmap(self.folder / shard, dtype=np.uint8, mode="c")
        return self._maps[shard]

    def close(self) -> None:
        self._maps.clear()
        self._bin_open.clear()

    def __enter__(self) -> HFCheckpointReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
