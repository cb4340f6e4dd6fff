"""Write Hugging Face weight shards as tensors arrive, plus the index, into a folder that appears atomically.

Shards are planned up front from the list of (name, shape): a tensor never straddles two shards and a
shard closes once the next tensor would pass ``max_shard_size`` (HF's rule). Safetensors shards are
streamed: the header (8-byte little-endian length + JSON with dtype/shape/offsets) is written when the
shard opens and each tensor's bytes go straight to the file (``write_source`` lets the kernel copy them
from the Megatron shards), so no shard is ever held in memory. ``.bin``
shards (``torch.save`` of a dict, on request) hold one shard in memory until it is saved.

Names: ``model-0000i-of-0000n.safetensors`` + ``model.safetensors.index.json``, or
``pytorch_model-0000i-of-0000n.bin`` + ``pytorch_model.bin.index.json``. The folder itself is made
atomic by the caller (``guardrails.atomic_folder``).

Library module, no command line.
"""
from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import BinaryIO, Literal

import torch

from conversion.tensor_source import OpenFiles, TensorSource, copy_source, materialize, write_all
from runconfig.sizes import parse_size

WeightFormat = Literal["safetensors", "bin"]
_SAFETENSORS_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}  # names on the command line
class ShardedWeightWriter:
    """Accepts tensors in the planned order and writes them into shards as they fill."""

    def __init__(
        self, folder: Path, shapes: dict[str, tuple[int, ...]], dtype: torch.dtype,
        fmt: WeightFormat = "safetensors", max_shard_size: int | str = "2GB",
    ) -> None:
        if fmt not in ("safetensors", "bin"):
            raise ValueError(f"format {fmt!r}: choose safetensors or bin")
        if dtype not in _SAFETENSORS_DTYPES:
            raise ValueError(f"dtype {dtype}: choose float32, float16 or bfloat16")
        self.folder, self.dtype, self.fmt = Path(folder), dtype, fmt
        self.shapes = shapes
        self.shards = _plan(shapes, dtype.itemsize, parse_size(max_shard_size))
        stem, ext = ("model", "safetensors") if fmt == "safetensors" else ("pytorch_model", "bin")
        total = len(self.shards)
        self.file_names = [f"{stem}-{i + 1:05d}-of-{total:05d}.{ext}" for i in range(total)]
        self.index_name = f"{stem}.{ext}.index.json"
        self._order = [name for shard in self.shards for name in shard]
        self._next = 0
        self._file: BinaryIO | None = None
        self._bin_buffer: dict[str, torch.Tensor] = {}
        self.bytes_written = 0

    def write(self, name: str, tensor: torch.Tensor) -> None:
        """Append the next planned tensor (converted to the output dtype)."""
        shard_index, position = self._claim(name, tuple(tensor.shape))
        tensor = tensor.to(self.dtype).contiguous()
        if self.fmt == "safetensors":
            if position == 0:
                self._open_safetensors(shard_index)
            assert self._file is not None
            write_all(self._file.fileno(), memoryview(tensor.view(torch.uint8).reshape(-1).numpy()))
        else:
            self._bin_buffer[name] = tensor.clone() if tensor.untyped_storage().nbytes() != tensor.nbytes else tensor
        self.bytes_written += tensor.nbytes
        self._advance(shard_index, position)

    def write_source(self, name: str, source: TensorSource, files: OpenFiles) -> None:
        """Append the next planned tensor from its shard byte ranges; copied by the kernel when the dtype
        already matches (safetensors), else read into memory and converted."""
        if self.fmt != "safetensors" or source.dtype != self.dtype:
            self.write(name, materialize(files, source))
            return
        shard_index, position = self._claim(name, source.shape)
        if position == 0:
            self._open_safetensors(shard_index)
        assert self._file is not None
        self.bytes_written += copy_source(files, source, self._file.fileno())
        self._advance(shard_index, position)

    def _claim(self, name: str, shape: tuple[int, ...]) -> tuple[int, int]:
        if self._next >= len(self._order) or name != self._order[self._next]:
            expected = self._order[self._next] if self._next < len(self._order) else "nothing more"
            raise ValueError(f"tensor {name!r} arrived out of order; expected {expected!r}")
        if tuple(shape) != tuple(self.shapes[name]):
            raise ValueError(f"{name}: shape {tuple(shape)}, planned {tuple(self.shapes[name])}")
        return self._locate(self._next)

    def _advance(self, shard_index: int, position: int) -> None:
        self._next += 1
        if position == len(self.shards[shard_index]) - 1:
            self._close(shard_index)

    def finish(self) -> Path:
        """Check every planned tensor arrived and write the index; returns the index path."""
        if self._next != len(self._order):
            raise ValueError(f"only {self._next} of {len(self._order)} tensors were written; missing {self._order[self._next]!r}")
        weight_map = {name: self.file_names[i] for i, shard in enumerate(self.shards) for name in shard}
        index = {"metadata": {"total_size": self.bytes_written}, "weight_map": weight_map}
        path = self.folder / self.index_name
        path.write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
        return path

    def abort(self) -> None:
        """Close a half-written shard (the caller discards the folder)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._bin_buffer = {}

    def _locate(self, flat_index: int) -> tuple[int, int]:
        for shard_index, shard in enumerate(self.shards):
            if flat_index < len(shard):
                return shard_index, flat_index
            flat_index -= len(shard)
        raise IndexError(flat_index)

    def _open_safetensors(self, shard_index: int) -> None:
        header: dict[str, object] = {"__metadata__": {"format": "pt"}}
        offset = 0
        for name in self.shards[shard_index]:
            nbytes = math.prod(self.shapes[name]) * self.dtype.itemsize
            header[name] = {"dtype": _SAFETENSORS_DTYPES[self.dtype], "shape": list(self.shapes[name]),
                            "data_offsets": [offset, offset + nbytes]}
            offset += nbytes
        raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
        raw += b" " * (-len(raw) % 8)  # the format pads the header with spaces to 8-byte alignment
        self._file = open(self.folder / self.file_names[shard_index], "wb", buffering=0)
        write_all(self._file.fileno(), memoryview(struct.pack("<Q", len(raw)) + raw))

    def _close(self, shard_index: int) -> None:
        if self.fmt == "safetensors":
            assert self._file is not None
            self._file.close()
            self._file = None
        else:
            torch.save(self._bin_buffer, self.folder / self.file_names[shard_index])
            self._bin_buffer = {}


def _plan(shapes: dict[str, tuple[int, ...]], itemsize: int, max_bytes: int) -> list[list[str]]:
    shards: list[list[str]] = [[]]
    filled = 0
    for name, shape in shapes.items():
        nbytes = math.prod(shape) * itemsize
        if shards[-1] and filled + nbytes > max_bytes:
            shards.append([])
            filled = 0
        shards[-1].append(name)
        filled += nbytes
    return shards
