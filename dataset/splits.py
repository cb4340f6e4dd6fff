"""Write, check and plan the fork's weighted split files (``--train/valid-weighted-split-paths-path``).

    python -m dataset.splits write --out data/train_data_paths.txt --name train "1.0 0:0.95 data/sample"
    python -m dataset.splits write --out data/valid_data_paths.txt --name valid "0.7 0:1 data/a_valid" \\
        "0.3 0:1 data/b_valid" [--group other "1.0 0:1 data/c"]
    python -m dataset.splits write --config run.yaml [splits.key=value ...]    # both files into out_dir
    python -m dataset.splits check data/valid_data_paths.txt [--role train|valid|test] [--check-files]
    python -m dataset.splits plan --train data/train_data_paths.txt --valid data/valid_data_paths.txt \\
        --seq-length 2048 --train-iters 250 --global-batch-size 128 [--eval-interval 50 --eval-iters 2] \\
        [--seed 1234] [--legacy-split-offsets] [--json plan.json]
    python -m dataset.splits plan --config run.yaml [splits.key=value training.key=value ...]
    python -m dataset.splits plan --data-path data/code_content_document --split 969,30,1 --seq-length 2048 \\
        --train-iters 250 --global-batch-size 128 [--eval-interval 50 --eval-iters 2] [--json plan.json]

``write`` prints the exact bytes it wrote; relative prefixes are written absolute (resolved next to the split
file, as this toolkit reads them), because the fork opens them from the job's working folder
(``--keep-relative`` writes them as given). ``check`` exits 0 when the fork accepts the file (its
parser's asserts plus the dataset build's: ``0 <= START < END <= 1``, positive weights) and 1 with
the reason otherwise; ``write`` and ``plan`` exit 2 on bad input (a bad entry, a missing prefix). Every file
written gets its record ``NAME.manifest.json`` beside it, and an existing one is replaced only when that record
proves it an earlier output of the same subcommand (``guardrails.output_paths``). ``plan`` prints a table and saves it as JSON (default: ``split_plan.json`` next
to the train split file); ``--seq-length`` is the model's (rows of N+1). Prefixes are resolved relative
to the split file's folder unless absolute (with ``--config``: relative to ``splits.out_dir``). With
``--config`` the run parameters (sequence length, iterations, batch, evaluation, seed) come from the
``training:`` section, where the run that trains reads them.
``plan --data-path`` plans continued pretraining (``pretrain_gpt.py --data-path P --split 969,30,1``):
document ranges, samples per epoch and epochs of each split (``dataset.splitting.gpt_split_planner``); a split file
whose prefix is a raw-document dataset (``PREFIX.idx`` exists) is planned the same way, range by range.

The code: ``dataset.splitting.splits`` (``dataset/splitting/splits.py``); this module is the command's entry point only.
"""
from guardrails.command_errors import run_command
from dataset.splitting.splits import main

if __name__ == "__main__":
    raise SystemExit(run_command(main))
