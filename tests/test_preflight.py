"""Preflight: one test per rule, and the command lists every problem at once with exit status 2."""
import dataclasses
from pathlib import Path

import pytest

from runconfig import load_section
from runconfig.model_presets import ModelShape, preset
from runconfig.training_section import TrainingConfig
from tests.conftest import FORK_FIXTURES
from tests.local_engine_fixtures import TOKENIZER, tiny_release
from training.cluster.launch import main
from tests.fork_stand_in import site_env_text, stand_in_checkout
from training.cluster.fork_runtime import check_megatron_dir, megatron_dir
from training.cluster.preflight import check_grid, check_splits, check_start_checkpoint, check_tokenizer
from training.resume.recorded_args import RecordedCheckpoint, read_recorded_checkpoint

TINY = ModelShape(2, 64, 4, 256, 256, 8192)


def _cfg(**values):
    # seq_length 256: the fork's index maps beside the fixture data were packed for it (rows of 257 tokens)
    return load_section(None, "training", TrainingConfig, [f"{k}={v}" for k, v in {
        "engine": "megatron", "seq_length": 256, **values}.items()])


def _messages(findings, error=True):
    return [f.message for f in findings if f.error == error]


def test_world_size_must_divide_by_tp_times_pp():
    found = _messages(check_grid(_cfg(tensor_model_parallel_size=4, pipeline_model_parallel_size=4), 1, 8, None))
    assert found == ["cluster.nodes x cluster.gpus_per_node = 1 x 8 = 8 GPUs is not divisible by TP x PP = 4 x 4;"
                     " change the node count or the parallel sizes"]
    assert check_grid(_cfg(tensor_model_parallel_size=4, pipeline_model_parallel_size=4, global_batch_size=64), 2, 8, None) == []


def test_global_batch_must_divide_by_micro_times_data_parallel():
    # 2 nodes x 8 GPUs, TP 2 -> 8 data-parallel ranks; micro 4 -> multiples of 32
    found = _messages(check_grid(_cfg(tensor_model_parallel_size=2, micro_batch_size=4, global_batch_size=48), 2, 8, None))
    assert len(found) == 1 and "48 is not divisible by micro_batch_size x data-parallel size = 4 x 8" in found[0]
    assert "multiple of 32" in found[0]


def test_heads_must_divide_by_tp():
    found = _messages(check_grid(_cfg(tensor_model_parallel_size=4, global_batch_size=32), 1, 8, preset("starcoderbase-3b")))
    assert found == ["22 attention heads are not divisible by tensor_model_parallel_size 4; pick a TP that divides them"]


def test_layers_must_divide_by_pp():
    found = _messages(check_grid(_cfg(pipeline_model_parallel_size=4, global_batch_size=8), 1, 8, preset("starcoderbase-7b")))
    assert found == ["42 layers are not divisible by pipeline_model_parallel_size 4; pick a PP that divides them"]


def test_seq_length_within_positions():
    found = _messages(check_grid(_cfg(seq_length=512), 1, 8, TINY))
    assert found == ["training.seq_length 512 exceeds the model's 256 positions; lower seq_length"]


def _recorded(**changes):
    args = {"num_layers": 2, "hidden_size": 64, "num_attention_heads": 4, "ffn_hidden_size": 256,
            "max_position_embeddings": 256, "make_vocab_size_divisible_by": 128}
    values = dict(root=Path("ckpt"), tag="release", tp=1, pp=1, dist_opt=False, args=args, embedding_rows=8192,
                  has_optimizer=False)
    values.update(changes)
    return RecordedCheckpoint(**values)


def test_padded_vocab_must_equal_the_embedding_rows():
    assert check_start_checkpoint(_cfg(), TINY, _recorded(), 8192) == []
    # 8190 tokens padded to a multiple of 128 x 1 -> 8192: still the checkpoint's rows
    assert check_start_checkpoint(_cfg(), TINY, _recorded(), 8190) == []
    found = _messages(check_start_checkpoint(_cfg(), TINY, _recorded(), 8193))
    assert found == ["the tokenizer's 8193 tokens padded to a multiple of make_vocab_size_divisible_by x TP = 128 x 1"
                     " give 8320 rows, but ckpt (release) has 8192 embedding rows; use the tokenizer the checkpoint"
                     " was trained with, or reconvert it with this TP"]


def test_start_checkpoint_shape_and_split_must_be_the_runs():
    found = _messages(check_start_checkpoint(_cfg(tensor_model_parallel_size=2), TINY, _recorded(), None))
    assert len(found) == 1 and "split TP=1 PP=1, the run uses TP=2 PP=1; reshard it: python -m conversion.hf_to_megatron" in found[0]
    other = dataclasses.replace(TINY, num_layers=4)
    assert _messages(check_start_checkpoint(_cfg(), other, _recorded(), None)) == [
        "ckpt (release) records num_layers=2, the run's model has 4; set training.model to the checkpoint's preset"
        " (or empty to take its shape)"]


def test_distributed_optimizer_layouts():
    dist = _cfg(use_distributed_optimizer="true")
    assert "no model_rng.pt" in _messages(check_start_checkpoint(dist, TINY, _recorded(), None))[0]
    warned = check_start_checkpoint(dist, TINY, _recorded(dist_opt=True), None)
    assert _messages(warned) == [] and "--no-load-optim" in _messages(warned, error=False)[0]
    assert check_start_checkpoint(dist, TINY, _recorded(dist_opt=True, has_optimizer=True), None) == []
    assert "model_optim_rng.pt" in _messages(check_start_checkpoint(_cfg(), TINY, _recorded(dist_opt=True), None))[0]


def test_a_real_release_is_read_and_accepted(tmp_path):
    recorded = read_recorded_checkpoint(tiny_release(tmp_path))
    assert (recorded.tp, recorded.pp, recorded.embedding_rows, recorded.dist_opt) == (1, 1, 8192, False)
    assert check_start_checkpoint(_cfg(), TINY, recorded, 8192) == []


def test_a_distributed_optimizer_release_is_recognised(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative root, as configs give it
    tiny_release(tmp_path)
    rank = Path("base") / "release" / "mp_rank_00"
    (rank / "model_optim_rng.pt").rename(rank / "model_rng.pt")
    recorded = read_recorded_checkpoint("base")
    assert (recorded.dist_opt, recorded.has_optimizer) == (True, False)
    (Path("base") / "release" / "mp_rank_00_000").mkdir()
    (Path("base") / "release" / "mp_rank_00_000" / "optim.pt").write_bytes(b"")
    assert read_recorded_checkpoint("base").has_optimizer


def test_pad_token_must_exist(tmp_path):
    from tokenizers import Tokenizer, models

    tok = Tokenizer(models.WordLevel({"<|endoftext|>": 0, "a": 1}, unk_token="a"))
    tok.save(str(tmp_path / "nopad.json"))
    found, vocab = check_tokenizer(str(tmp_path / "nopad.json"))
    assert vocab == 2 and "has no pad token (<fim-pad> or <fim_pad>)" in _messages(found)[0]
    assert check_tokenizer(str(TOKENIZER)) == ([], 8192)
    assert "not a readable tokenizer.json" in _messages(check_tokenizer(str(tmp_path / "missing.json"))[0])[0]


def _split(tmp_path, name, line):
    path = tmp_path / name
    path.write_text(line + "\n")
    return str(path)


def test_split_files_prefixes_dtype_and_vocab(tmp_path):
    sample = FORK_FIXTURES / "sample"
    good = _cfg(train_split_file=_split(tmp_path, "t.txt", f'"train: 1.0 0:1 {sample}"'))
    assert check_splits(good, 8192, fork=True) == []
    # token ids of the fixture go up to 8190: a smaller vocab is caught per file
    assert any("token id 8190 is not below the tokenizer's 8000 tokens" in m for m in _messages(check_splits(good, 8000, True)))
    missing = _cfg(train_split_file=_split(tmp_path, "m.txt", f'"train: 1.0 0:1 {tmp_path / "nothing"}"'))
    assert any("nothing_inputs_document" in m and "dataset.preprocess" in m for m in _messages(check_splits(missing, 8192, True)))
    broken = _cfg(train_split_file=_split(tmp_path, "b.txt", "train: 1.0 0:1 x"))
    assert len(_messages(check_splits(broken, 8192, True))) == 1
    relative = _cfg(train_split_file=_split(tmp_path, "r.txt", '"train: 1.0 0:1 sample_here"'))
    assert any("is relative: the fork opens it from the job's folder" in m for m in _messages(check_splits(relative, 8192, True)))


def test_split_datasets_must_share_one_dtype(tmp_path):
    import numpy as np

    from dataset.formats.indexed_dataset import IndexedDatasetWriter

    for key in ("inputs", "targets"):
        writer = IndexedDatasetWriter(str(tmp_path / f"big_{key}_document"), np.dtype(np.int32))
        writer.add(np.array([1, 2, 3], dtype=np.int32))
        writer.finalize()
        writer.commit()
    cfg = _cfg(train_split_file=_split(tmp_path, "t.txt", f'"train: 0.5 0:1 {FORK_FIXTURES / "sample"}, 0.5 0:1 {tmp_path / "big"}"'))
    found = _messages(check_splits(cfg, 8192, True))
    assert len(found) == 1 and found[0].startswith("the datasets mix token dtypes (int32: ")


def test_validation_must_not_overlap_training(tmp_path):
    sample = FORK_FIXTURES / "sample"
    train = _split(tmp_path, "t.txt", f'"train: 1.0 0:0.95 {sample}"')
    valid = _split(tmp_path, "v.txt", f'"valid: 1.0 0.95:1 {sample}"')
    cfg = _cfg(train_split_file=train, valid_split_file=valid)
    # disjoint for the local engine; the fork reads 0.95:1 as the first 20 of the 400 documents
    assert check_splits(dataclasses.replace(cfg, engine="local"), 8192, fork=False) == []
    assert _messages(check_splits(cfg, 8192, fork=True)) == [
        f"validation documents [0, 20) of {sample} overlap the training documents [0, 380) as the fork reads them"
        " (it ignores a range's start); hold validation out in its own prefix (data.valid_fraction) and use 0:1 for both"]
    real = _cfg(train_split_file=train, valid_split_file=_split(tmp_path, "v2.txt", f'"valid: 1.0 0.9:1 {sample}"'))
    assert "[360, 400) of" in _messages(check_splits(real, 8192, fork=False))[0]


def test_megatron_dir_must_hold_finetune_mtf(tmp_path):
    site = tmp_path / "site.env"
    assert "MEGATRON_DIR is not set" in _messages(check_megatron_dir(megatron_dir({}, str(site)), str(site)))[0]
    fork = tmp_path / "Megatron LM"
    fork.mkdir()
    site.write_text(f'source /x/activate\nexport MEGATRON_DIR="{fork}"\n')
    assert "holds no finetune_mtf.py" in _messages(check_megatron_dir(megatron_dir({}, str(site)), str(site)))[0]
    (fork / "finetune_mtf.py").write_text("")
    assert check_megatron_dir(megatron_dir({}, str(site)), str(site)) == []
    # the job sources the site env after inheriting the environment: its value wins, as here
    assert megatron_dir({"MEGATRON_DIR": str(tmp_path)}, str(site)) == str(fork)
    assert megatron_dir({"MEGATRON_DIR": str(tmp_path)}, str(tmp_path / "none.env")) == str(tmp_path)


def test_preflight_lists_every_problem_and_exits_2(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MEGATRON_DIR", raising=False)
    base = tiny_release(tmp_path)
    config = tmp_path / "run.yaml"
    config.write_text(
        f"training:\n  engine: megatron\n  load: {base}\n  save: {tmp_path / 'save'}\n  tokenizer: {TOKENIZER}\n"
        f"  train_split_file: {_split(tmp_path, 't.txt', chr(34) + 'train: 1.0 0:1 ' + str(FORK_FIXTURES / 'sample') + chr(34))}\n"
        "  seq_length: 512\n  tensor_model_parallel_size: 3\n  global_batch_size: 8\n"
        f"cluster:\n  nodes: 1\n  gpus_per_node: 2\n  site_env: {tmp_path / 'site.env'}\n")
    assert main(["preflight", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    for expected in ("2 GPUs is not divisible by TP x PP = 3 x 1", "4 attention heads are not divisible",
                     "seq_length 512 exceeds", "split TP=1 PP=1, the run uses TP=3", "MEGATRON_DIR is not set",
                     "128 x 3 give 8448 rows", "site.env: the site env file is missing",
                     # the fork's three packed maps beside the fixture data were built for seq_length 256
                     "sample_valid_indexmap_12ns_1234s_decoder_packed_batch_idx.npy: row 0 (",
                     "preflight: 10 problem(s); nothing was queued"):
        assert expected in err
    (tmp_path / "site.env").write_text(site_env_text(stand_in_checkout(tmp_path / "fork")))
    assert main(["preflight", "--config", str(config), "training.seq_length=256",
                 "training.tensor_model_parallel_size=1", "cluster.request_gpus=false"]) == 0
    captured = capsys.readouterr()
    assert "preflight: OK" in captured.out and "note: training.dtype auto: the fork trains in float32" in captured.err
    from torch.utils import cpp_extension

    if cpp_extension.CUDA_HOME is None:  # a CPU build of torch: on GPUs the fork would die in fused_kernels.load
        assert main(["preflight", "--config", str(config), "training.seq_length=256",
                     "training.tensor_model_parallel_size=1"]) == 2
        err = capsys.readouterr().err
        assert "torch.utils.cpp_extension.CUDA_HOME is None" in err and "bfloat16" in err
    # saving into the release folder itself is refused, and the other rules are still checked
    assert main(["preflight", "--config", str(config), f"training.save={base}", "training.seq_length=256"]) == 2
    err = capsys.readouterr().err
    assert "training.save and training.load are the same folder" in err and "divisible by TP x PP = 3 x 1" in err


@pytest.mark.parametrize("name", ["starcoderbase-1b", "starcoderbase-3b", "starcoderbase-7b", "starcoderbase"])
def test_example_configs_fit_their_grid(name):
    from runconfig.run_config import load_run_config
    from tests.conftest import REPO_ROOT

    run = load_run_config(REPO_ROOT / "scripts" / "configs" / f"{name}.yaml")
    assert run.training.engine == "megatron" and run.training.model == name
    assert check_grid(run.training, run.cluster.nodes, run.cluster.gpus_per_node, preset(name)) == []
    # the conversion section writes the start checkpoint with the run's split
    assert (run.conversion.tp, run.conversion.pp) == (run.training.tensor_model_parallel_size,
                                                      run.training.pipeline_model_parallel_size)
