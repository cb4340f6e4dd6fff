"""Benchmark ``python -m dataset.merge_shards`` against copying the same bytes, measured in the same run.

Run::

    python scripts/bench_merge.py [--size-mb 512] [--shards 8] [--repeats 2] [--keep DIR]

It makes a real sharded run of the fork fixture (``dataset.preprocess --num-shards``, with a hold-out, so the
manifests and every check are the real ones), then swaps each shard's four datasets for synthetic ones of
``--size-mb`` MB of tokens in all (random lengths 50..3000 tokens, written in blocks) and updates the counts
in the shard manifests to match. Then, best of ``--repeats``, alternating so both see the same page cache:

- the baseline: copying every shard file to one destination file per dataset (``shutil.copyfile`` into a
  fresh file, then ``fsync``), i.e. the same bytes as the merge writes;
- the merge: ``python -m dataset.merge_shards`` in a subprocess, timed by its own manifest (``timings_s``:
  checks, joining, fsync, renames; not the interpreter start-up), and its peak RSS (``wait4``), shown for
  the full size and a quarter of it: a merge streams, so the two differ only by the index blocks
  (at most 2^20 entries, 8 MiB each, ``dataset.formats.indexed_concat``) and stay flat beyond that.

The last line is ``ratio_to_copy=<copy seconds / merge seconds>`` (1.0 is copy speed; higher is better).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from dataset.formats.indexed_dataset import IndexedDatasetWriter, data_file_path, index_file_path
from dataset.preprocessing.preprocess import main as preprocess_main
from dataset.formats.preprocess_manifest import manifest_path, read_manifest, write_manifest
from dataset.preprocessing.shard_plan import ShardSpec, shard_prefix

ROOT = Path(__file__).resolve().parent.parent

FIXTURES = ROOT / "tests" / "fixtures" / "fork"
ROLES = ("inputs", "targets")


def make_shards(prefix: str, shards: int, size_bytes: int) -> list[Path]:
    """A real sharded run, then big synthetic datasets in place of each shard's; returns every shard file."""
    for index in range(shards):
        with contextlib.redirect_stdout(io.StringIO()):
            code = preprocess_main(["--input", str(FIXTURES / "sample.jsonl"),
                                    "--tokenizer", str(FIXTURES / "tokenizer.json"),
                                   "--output-prefix", prefix, "--valid-fraction", "0.05", "--workers", "1",
                                   "--num-shards", str(shards), "--shard-index", str(index)])
        assert code == 0, "the sharded fixture run failed"
    rng = np.random.default_rng(0)
    per_dataset = size_bytes // (shards * 2)  # two roles; the hold-out adds a twentieth
    files = []
    for index in range(shards):
        part = shard_prefix(prefix, ShardSpec(index, shards))
        manifest = read_manifest(manifest_path(part))
        for split, split_prefix in (("train", part), ("valid", f"{part}_valid")):
            budget = per_dataset if split == "train" else per_dataset // 20
            lengths = rng.integers(50, 3000, size=max(1, budget // (2 * 1525)))
            for role in ROLES:
                writer = IndexedDatasetWriter(f"{split_prefix}_{role}_document", np.uint16)
                for start in range(0, len(lengths), 4096):  # blocks: the generator stays small too
                    block = lengths[start:start + 4096]
                    writer.add_batch(rng.integers(0, 50000, size=int(block.sum()), dtype=np.uint16), block)
                writer.finalize()
                writer.commit()
                manifest["outputs"][split]["tokens"][role] = writer.num_tokens
                files += [data_file_path(writer.prefix), index_file_path(writer.prefix)]
            manifest["outputs"][split]["documents"] = len(lengths)
        write_manifest(manifest_path(part), manifest)
    return files


def copy_same_bytes(files: list[Path], out: Path) -> float:
    """Concatenate the shard files per dataset kind, as plain copies; seconds."""
    out.mkdir(exist_ok=True)
    started = time.perf_counter()
    groups: dict[str, list[Path]] = {}
    for path in files:
        groups.setdefault(path.name, []).append(path)
    for name, paths in groups.items():
        with open(out / name, "wb") as dst:
            for path in paths:
                with open(path, "rb") as src:
                    _sendfile(src, dst)
            dst.flush()
            os.fsync(dst.fileno())
    elapsed = time.perf_counter() - started
    shutil.rmtree(out)
    return elapsed


def _sendfile(src, dst) -> None:
    """``shutil.copyfile``'s fast path (in-kernel sendfile) appending to an open file."""
    size = os.fstat(src.fileno()).st_size
    dst.flush()
    offset = 0
    while offset < size:
        offset += os.sendfile(dst.fileno(), src.fileno(), offset, size - offset)


def run_merge(prefix: str, shards: int) -> tuple[float, int]:
    """Merge in a subprocess; (its own seconds, its peak RSS in MiB)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-m", "dataset.merge_shards", "--output-prefix", prefix,
                              "--num-shards", str(shards)], env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "merge failed"
    seconds = read_manifest(manifest_path(prefix))["timings_s"]["total"]
    return seconds, usage.ru_maxrss // 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=512)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--keep", help="work in this folder and keep it")
    args = parser.parse_args(argv)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_merge_"))
    try:
        small = str(work / "small" / "ds")
        make_shards(small, args.shards, args.size_mb * (1 << 20) // 4)
        _, small_rss = run_merge(small, args.shards)
        shutil.rmtree(work / "small")
        prefix = str(work / "full" / "ds")
        files = make_shards(prefix, args.shards, args.size_mb * (1 << 20))
        total = sum(p.stat().st_size for p in files)
        copy_s, merge_s, rss = [], [], 0
        for _ in range(args.repeats):
            copy_s.append(copy_same_bytes(files, work / "copy"))
            seconds, rss = run_merge(prefix, args.shards)
            merge_s.append(seconds)
        out = sum(Path(f).stat().st_size for f in read_manifest(manifest_path(prefix))["outputs"]["train"]["files"])
        print(f"shards={args.shards} shard_bytes={total} merged_train_bytes={out}")
        print(f"copy_s={min(copy_s):.3f} ({total / min(copy_s) / 1e6:.0f} MB/s) "
              f"merge_s={min(merge_s):.3f} ({total / min(merge_s) / 1e6:.0f} MB/s)")
        print(f"merge_peak_rss_mib: quarter_size={small_rss} full_size={rss}")
        print(f"ratio_to_copy={min(copy_s) / min(merge_s):.2f}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
