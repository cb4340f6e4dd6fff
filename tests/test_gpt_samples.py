"""``python -m training.gpt_samples`` reproduces the fork's GPT index maps and FIM samples byte for byte.

Goldens: tests/fixtures/fork_fim/ (the fork's own ``GPTDataset``, branch multi-query-attention; README there).
"""
import filecmp
import json
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

from dataset.text_tokenizer import TextTokenizer
from training.fim import FimTokenError, lookup_fim_tokens
from training.gpt_samples import main

FIM_DIR = Path(__file__).parent / "fixtures" / "fork_fim"
CASES = {case["key"]: case for case in json.loads((FIM_DIR / "cases.json").read_text())}
SPLITS = ("train", "valid", "test")


def _argv(case: dict, cache: Path, out: Path, prefix: Path = FIM_DIR / "code_content_document") -> list[str]:
    argv = ["--data-prefix", str(prefix), "--tokenizer", str(FIM_DIR / "tokenizer.json"),
            "--seq-length", str(case["seq_length"]), "--seed", str(case["seed"]),
            "--num-samples", str(case["num_samples"]), "--split", "969,30,1",
            "--split-index", str(case["split_index"]), "--fim-rate", str(case["fim_rate"]),
            "--fim-spm-rate", str(case["fim_spm_rate"]), "--cache-dir", str(cache), "--out", str(out)]
    if "fim_split_sample" in case:
        argv += ["--fim-split-sample", case["fim_split_sample"], "--fragment-fim-rate", str(case["fragment_fim_rate"])]
    return argv


def _map_names(case: dict) -> list[str]:
    split = SPLITS[case["split_index"]]
    return [f"code_content_document_{split}_indexmap_{case['num_samples']}ns_{case['seq_length']}sl_"
            f"{case['seed']}s_{kind}_idx.npy" for kind in ("doc", "sample", "shuffle")]


@pytest.mark.parametrize("key", sorted(CASES))
def test_every_fixture_case_is_byte_identical(tmp_path, key, capsys):
    case = CASES[key]
    out = tmp_path / "samples.npy"
    assert main(_argv(case, tmp_path / "cache", out)) == 0, capsys.readouterr().err
    for name in _map_names(case):
        assert filecmp.cmp(tmp_path / "cache" / name, FIM_DIR / name, shallow=False), name
    rows = np.load(out)
    golden = np.load(FIM_DIR / "samples.npz")[key]
    assert rows.shape == golden.shape == (case["num_samples"], case["seq_length"] + 1)
    np.testing.assert_array_equal(rows, golden)


def test_cache_is_reused_then_rebuilt_when_the_split_changes(tmp_path, capsys):
    case, cache = CASES["nofim_train"], tmp_path / "cache"
    assert main(_argv(case, cache, tmp_path / "a.npy")) == 0
    assert "index maps built" in capsys.readouterr().out
    assert main(_argv(case, cache, tmp_path / "b.npy")) == 0
    assert "index maps reused" in capsys.readouterr().out
    argv = _argv(case, cache, tmp_path / "c.npy")
    argv[argv.index("969,30,1")] = "900,90,10"  # same file names in the fork, other documents: it would reuse
    assert main(argv) == 0
    assert "index maps built" in capsys.readouterr().out
    doc_idx = np.load(cache / _map_names(case)[0])
    assert len(doc_idx) == 270 and doc_idx.max() == 269  # round(0.9 * 300) documents
    (cache / _map_names(case)[2]).write_bytes(b"garbage")  # a damaged map is rebuilt, not trusted
    assert main(_argv(case, cache, tmp_path / "d.npy")) == 0
    assert "index maps built" in capsys.readouterr().out
    assert filecmp.cmp(cache / _map_names(case)[2], FIM_DIR / _map_names(case)[2], shallow=False)


def test_empty_split_is_a_clear_error(tmp_path, capsys):
    case = dict(CASES["nofim_train"], split_index=2)  # 969,30,1 of 300 documents leaves test empty
    assert main(_argv(case, tmp_path / "cache", tmp_path / "out.npy")) == 2
    assert "gives the test split no documents" in capsys.readouterr().err
    assert not (tmp_path / "out.npy").exists()


def _tiny_tokenizer(path: Path, tokens: list[str], special: bool = True) -> Path:
    """A character-level tokenizer; ``tokens`` in its vocabulary, as added special tokens or plain entries."""
    vocab = {"<|endoftext|>": 0, "a": 1, "<": 2, ">": 3, "f": 4, "i": 5, "m": 6, "_": 7}
    vocab.update({t: len(vocab) + i for i, t in enumerate(tokens)})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="a"))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    if special:
        tok.add_special_tokens(tokens)
    tok.save(str(path))
    return path


def test_fim_tokens_are_looked_up_by_name(tmp_path):
    ids = lookup_fim_tokens(TextTokenizer(FIM_DIR / "tokenizer.json"), "<filename>")
    assert (ids.prefix, ids.middle, ids.suffix, ids.pad, ids.split) == (1, 2, 3, 4, 5)  # README's constants
    missing = TextTokenizer(_tiny_tokenizer(tmp_path / "t.json", ["<fim_prefix>", "<fim_middle>", "<fim_suffix>"]))
    with pytest.raises(FimTokenError, match="needs the token '<fim_pad>', which this tokenizer does not have"):
        lookup_fim_tokens(missing)
    with pytest.raises(FimTokenError, match="--fim-split-sample needs the token '<file>'"):
        lookup_fim_tokens(TextTokenizer(FIM_DIR / "tokenizer.json"), "<file>")


def test_fim_token_that_is_not_one_token_when_encoded(tmp_path):
    names = ["<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>"]
    plain = TextTokenizer(_tiny_tokenizer(tmp_path / "t.json", names, special=False))  # not added tokens
    with pytest.raises(FimTokenError, match="encodes to .*not one token"):
        lookup_fim_tokens(plain)


def test_missing_fim_token_exits_2_through_the_command(tmp_path, capsys):
    tok = _tiny_tokenizer(tmp_path / "t.json", [])
    argv = _argv(CASES["fim_train"], tmp_path / "cache", tmp_path / "out.npy")
    argv[argv.index(str(FIM_DIR / "tokenizer.json"))] = str(tok)
    assert main(argv) == 2
    assert "<fim_prefix>" in capsys.readouterr().err and not (tmp_path / "out.npy").exists()


def test_any_access_order_gives_the_in_order_items(tmp_path):
    from training.fim import FimSettings
    from training.gpt_dataset import GPTSampleSettings, build_gpt_samples

    settings = GPTSampleSettings(str(FIM_DIR / "code_content_document"), str(FIM_DIR / "tokenizer.json"), 128, 240,
                                 fim=FimSettings(0.5, 0.5))
    samples = build_gpt_samples(settings, tmp_path).samples
    golden = np.load(FIM_DIR / "samples.npz")["fim_train"]
    for i in (37, 5, 5, 6, 200, 0, 239):  # skip ahead, go back, repeat: always the fork's in-order item
        np.testing.assert_array_equal(samples[i], golden[i])


def test_missing_data_and_bad_rates_exit_2(tmp_path, capsys):
    argv = _argv(CASES["fim_train"], tmp_path / "cache", tmp_path / "out.npy", prefix=tmp_path / "nothing")
    assert main(argv) == 2
    assert f"{tmp_path / 'nothing'}.idx" in capsys.readouterr().err
    argv = _argv(CASES["fim_train"], tmp_path / "cache", tmp_path / "out.npy")
    argv[argv.index("--fim-rate") + 1] = "1.5"
    assert main(argv) == 2
    assert "FIM rate must be between 0 and 1, got 1.5" in capsys.readouterr().err
    assert not (tmp_path / "out.npy").exists()


def _train_tokens() -> int:
    """Tokens of the fixture's train split (969,30,1 of its documents), read from the data itself."""
    from dataset.gpt_index import split_document_ranges
    from dataset.indexed_dataset import IndexedDataset

    sizes = IndexedDataset(str(FIM_DIR / "code_content_document")).sizes
    return int(sizes[:split_document_ranges("969,30,1", len(sizes))[1]].sum())


def test_sizes_the_data_or_memory_cannot_hold_are_refused_with_the_numbers(tmp_path, capsys, monkeypatch):
    from dataset import memory_budget

    monkeypatch.setattr(memory_budget, "available_memory", lambda: 2 * 10**9)  # a 2 GB machine, whatever runs it
    case, cache, out = CASES["nofim_train"], tmp_path / "cache", tmp_path / "out.npy"
    argv = _argv(case, cache, out)
    argv[argv.index("--seq-length") + 1] = "1000000000"  # once: 11 GB after two minutes, still growing
    argv[argv.index("--num-samples") + 1] = "10"
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "10 rows of 1000000001 int64 tokens needs 80.0 GB of memory" in err and "2.0 GB available" in err, err
    tokens = _train_tokens()
    argv[argv.index("--seq-length") + 1] = str(tokens)  # fits in memory, but one sample is longer than the data
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"a sample of {tokens + 1} tokens is longer than the split's {tokens} tokens" in err, err
    assert not out.exists() and not cache.exists()
    argv[argv.index("--seq-length") + 1] = str(tokens - 1)  # the longest sample the split holds still works
    argv[argv.index("--num-samples") + 1] = "1"
    assert main(argv) == 0 and np.load(out).shape == (1, tokens)


def test_index_maps_beyond_memory_are_refused_before_the_cache_is_touched(tmp_path, monkeypatch):
    from dataset import memory_budget
    from dataset.memory_budget import MemoryBudgetError
    from training.gpt_dataset import GPTSampleSettings, build_gpt_samples

    monkeypatch.setattr(memory_budget, "available_memory", lambda: 10**6)  # 1 MB left
    settings = GPTSampleSettings(str(FIM_DIR / "code_content_document"), str(FIM_DIR / "tokenizer.json"), 128,
                                 10**5)  # the local engine's path: maps only, no rows
    with pytest.raises(MemoryBudgetError, match=r"100000 samples of 129 tokens \(\d+ epochs of 291 documents"):
        build_gpt_samples(settings, tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_cache_dir_that_is_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "cache").write_text("a user's file\n")
    assert main(_argv(CASES["nofim_train"], tmp_path / "cache", tmp_path / "out.npy")) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("warning:")]
    assert len(lines) == 1 and f"{tmp_path / 'cache'}: exists and is not a folder" in lines[0], lines
    assert (tmp_path / "cache").read_text() == "a user's file\n" and not (tmp_path / "out.npy").exists()
