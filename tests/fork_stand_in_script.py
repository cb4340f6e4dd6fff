"""Stand-in for the fork's ``finetune_mtf.py`` in tests: trains nothing, writes what the fork writes.

``tests/fork_stand_in.py`` copies this file into a stand-in checkout as ``finetune_mtf.py``. Run by the job as the
fork would be (``python $MEGATRON_DIR/finetune_mtf.py ARGV`` under torchrun), it leaves the files the real fork
leaves, so the launcher's handling of them is tested without the fork (``tests/test_fork_training.py`` runs the
real one):

* ``--structured-logs-dir``: ``logs_rank_N.txt`` for every rank; ``--tensorboard-dir``: an event file (rank 0);
* next to every train prefix: its index maps, ``PREFIX_GROUP_indexmap_Nns_Ss_decoder_packed_{batch,shuffle}_idx.npy``;
* ``--save``: ``iter_XXXXXXX/mp_rank_00/model_optim_rng.pt`` every ``--save-interval`` and at the end, with the
  args the fork records (its own values from the argv, ``consumed_train_samples``...) and its scheduler entry,
  then the tracker; where it begins is the fork's ``load_checkpoint``'s (branch mtf): ``--load`` holding a tracker
  turns ``--finetune`` off, a ``release`` (or ``--reset-progress``) begins at iteration 0, and the data position is
  the loaded checkpoint's recorded ``consumed_train_samples`` unless ``--reset-progress``; the fork's sampler refuses
  a position past the run's samples ("no samples left to consume", exit 1);
* on stdout, the fork's iteration lines (``iteration N/ M | consumed samples: ... | lm loss: ... |``);
* with ``SEEN`` set, ``$SEEN/rankN.json``: the argv and the launcher's environment variables it received.
"""
import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np


def _args(argv):
    parser = argparse.ArgumentParser(allow_abbrev=False)  # --structured-logs is the fork's flag too
    for flag in ("--save", "--load", "--structured-logs-dir", "--tensorboard-dir", "--train-weighted-split-paths-path",
                 "--valid-weighted-split-paths-path", "--lr-decay-style"):
        parser.add_argument(flag, default=None)
    for flag in ("--save-interval", "--train-samples", "--global-batch-size", "--seed", "--seq-length",
                 "--lr-warmup-samples", "--lr-decay-samples"):
        parser.add_argument(flag, type=int, default=0)
    for flag in ("--lr", "--min-lr", "--weight-decay", "--hidden-dropout", "--attention-dropout"):
        parser.add_argument(flag, type=float, default=0.1)
    parser.add_argument("--reset-progress", action="store_true")
    parser.add_argument("--override-opt_param-scheduler", action="store_true")
    return parser.parse_known_args(argv)[0]


def _index_maps(split_file, samples, seed, seq_length):
    """Maps named as the fork names them, next to the data (the fork writes them there), packed as the fork packs
    them (``dataset.splitting.packed_index``, byte-identical to the fork's; whole-prefix ranges here)."""
    from dataset.formats.indexed_dataset import IndexedDataset
    from dataset.splitting.packed_index import build_packed_index, pair_lengths

    for text in Path(split_file).read_text().strip().strip('"').split('" "'):
        group, datasets = text.split(":", 1)
        for dataset in datasets.split(","):
            prefix = dataset.split()[2]
            lengths = pair_lengths(*(IndexedDataset(f"{prefix}_{key}_document").sizes for key in ("inputs", "targets")))
            index = build_packed_index(lengths, 0, len(lengths), samples, seq_length + 1, seed, True)
            for kind, array in (("batch", index.batch_idx), ("shuffle", index.shuffle_idx)):
                np.save(f"{prefix}_{group}_indexmap_{samples}ns_{seed}s_decoder_packed_{kind}_idx.npy", array)


def _save(args, start, iteration, consumed, split_file):
    from conversion.megatron_checkpoint import write_megatron_checkpoint

    gbs = args.global_batch_size
    recorded = {"iteration": iteration, "consumed_train_samples": consumed, "consumed_valid_samples": 0,
                "seed": args.seed, "seq_length": args.seq_length, "global_batch_size": gbs,
                "train_samples": args.train_samples, "lr_decay_samples": args.lr_decay_samples,
                "hidden_dropout": args.hidden_dropout, "attention_dropout": args.attention_dropout,
                "train_weighted_split_paths_path": split_file, "save": args.save, "load": args.load}
    scheduler = {"max_lr": args.lr, "lr_warmup_steps": args.lr_warmup_samples, "num_steps": consumed,
                 "lr_decay_style": args.lr_decay_style, "lr_decay_steps": args.lr_decay_samples, "min_lr": args.min_lr,
                 "start_wd": args.weight_decay, "end_wd": args.weight_decay, "wd_incr_style": "constant",
                 "wd_incr_steps": args.train_samples}
    write_megatron_checkpoint(args.save, iteration, start.hf_state_dict, start.hf_config, optimizer={"state": {}},
                              opt_param_scheduler=scheduler, rng_state=[{}], extra_args=recorded)


def main(argv):
    args = _args(argv)
    rank = int(os.environ.get("RANK", "0"))
    if os.environ.get("SEEN"):
        keys = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
        with open(os.path.join(os.environ["SEEN"], f"rank{rank}.json"), "w") as f:
            json.dump({"argv": argv, "env": {k: os.environ.get(k) for k in keys}}, f)
    if args.structured_logs_dir:
        os.makedirs(args.structured_logs_dir, exist_ok=True)
        Path(args.structured_logs_dir, f"logs_rank_{rank}.txt").write_text(f"rank {rank}: {' '.join(argv)}\n")
    if rank != 0 or not args.save:
        return 0
    if args.tensorboard_dir:
        os.makedirs(args.tensorboard_dir, exist_ok=True)
        Path(args.tensorboard_dir, f"events.out.tfevents.{int(time.time())}.stand-in").write_bytes(b"")
    _index_maps(args.train_weighted_split_paths_path, args.train_samples, args.seed, args.seq_length)
    from conversion.megatron_checkpoint import read_megatron_checkpoint

    start = read_megatron_checkpoint(args.load)
    first = 0 if start.tag == "release" or args.reset_progress else start.iteration
    position = 0 if args.reset_progress else int(getattr(start.args, "consumed_train_samples", 0) or 0)
    last = args.train_samples // args.global_batch_size
    print(f"Resuming from {args.load}", flush=True)
    if first < last and position >= args.train_samples:
        print(f"AssertionError: no samples left to consume: {position}, {args.train_samples}", flush=True)
        return 1
    for iteration in range(first + 1, last + 1):
        consumed = position + (iteration - first) * args.global_batch_size
        print(f" iteration {iteration:8d}/{last:8d} | consumed samples: {consumed:12d} |"
              f" elapsed time per iteration (ms): 12.5 | learning rate: {args.lr:.3E} | global batch size:"
              f" {args.global_batch_size:5d} | lm loss: {9.0 / math.sqrt(iteration):.6E} | loss scale: 1.0 |",
              flush=True)
        if iteration % args.save_interval == 0 or iteration == last:
            _save(args, start, iteration, consumed, args.train_weighted_split_paths_path)
            print(f"  successfully saved checkpoint at iteration {iteration:7d} to {args.save}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
