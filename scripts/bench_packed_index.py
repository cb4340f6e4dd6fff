"""Benchmark: our vectorised packed-MTF index build vs the fork's per-pair Python loop, same inputs.

    python scripts/bench_packed_index.py [--documents 300000] [--seq-length 2048] [--epochs 2] [--blend 1000000]

Random pair lengths (10..1500 tokens, a few over-long), ``num_samples`` chosen so that the build spans
``--epochs`` epochs. The baseline is the fork's ``_build_sample_idx`` loop transcribed as is (one Python
iteration per pair); both results are checked equal before timing is reported. Also times the greedy
blending index for ``--blend`` samples over three datasets. The last line is
``ratio_to_fork_loop=<baseline seconds / ours>`` (higher is better).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from dataset.splitting.blending import blending_weights, build_blending_index
from dataset.splitting.packed_index import build_packed_index, rows_per_epoch


def fork_loop(lengths: np.ndarray, num_samples: int, row_length: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The fork's index-map loop, statement by statement (baseline)."""
    rng = np.random.RandomState(seed=seed)
    n = len(lengths)
    row_offset, old_start, epoch, shuffles, samples = 0, 0, 0, [], []
    while len(samples) <= num_samples:
        ids = np.arange(n, dtype=np.int64)
        rng.shuffle(ids)
        shuffles.append(ids)
        row, start, offset = row_offset, old_start, epoch * n
        for end, doc in enumerate(ids):
            end += offset
            tok = int(lengths[doc])
            row += tok
            if row > row_length:
                if end > start:
                    samples.append(np.asarray([start, end]))
                start, row = end, tok
                if tok > row_length:
                    start, row = end + 1, 0
        row_offset, old_start, epoch = row, start, epoch + 1
    return np.concatenate(shuffles), np.stack(samples)


def best_of(repeats: int, fn) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--documents", type=int, default=300_000)
    parser.add_argument("--seq-length", type=int, default=2048)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--blend", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    lengths = rng.integers(10, 1500, size=args.documents)
    lengths[rng.integers(0, args.documents, size=10)] = args.seq_length + 500
    row = args.seq_length + 1
    per_epoch, _ = rows_per_epoch(lengths, 0, args.documents, row, 1234)
    num_samples = per_epoch * (args.epochs - 1) + per_epoch // 2
    ours_s, ours = best_of(args.repeats,
                           lambda: build_packed_index(lengths, 0, args.documents, num_samples, row, 1234, True))
    fork_s, (shuffle, batch) = best_of(1, lambda: fork_loop(lengths, num_samples, row, 1234))
    assert np.array_equal(ours.shuffle_idx, shuffle) and np.array_equal(ours.batch_idx, batch), "results differ"
    weights = blending_weights([0.5, 0.3, 0.2])
    blend_s, _ = best_of(1, lambda: build_blending_index(weights, args.blend))
    print(f"documents={args.documents} epochs={ours.epochs} rows={ours.num_rows} skipped={len(ours.skipped)}")
    print(f"fork_loop_s={fork_s:.3f} ours_s={ours_s:.3f}")
    print(f"blending_{args.blend}_samples_s={blend_s:.3f}")
    print(f"ratio_to_fork_loop={fork_s / ours_s:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
