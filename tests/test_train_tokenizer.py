"""train_tokenizer: StarCoder's special-token layout (checked against the fork fixture), determinism, HF loading."""
import gzip
import json
import sysconfig
from pathlib import Path

import pytest
from tokenizers import Tokenizer
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from dataset.builders.train_tokenizer import TokenizerInputError, main, read_training_texts

VOCAB = 600


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A small jsonl of OctoPack-style records built from real stdlib source lines."""
    source = (Path(sysconfig.get_paths()["stdlib"]) / "textwrap.py").read_text(encoding="utf-8")
    chunks = source.split("\n\n")
    path = tmp_path_factory.mktemp("corpus") / "pairs.jsonl"
    with open(path, "w", encoding="utf-8") as handle:
        for i, chunk in enumerate(chunks):
            record = {"inputs": f"<filename>m{i}.py<commit_before>{chunk}<commit_msg>",
                      "targets": f"Fix it<commit_after>{chunk} café ✅<|endoftext|>"}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    assert main(["--inputs", str(corpus), "--output", str(out), "--vocab-size", str(VOCAB)]) == 0
    return out


def test_layout_matches_the_fork_tokenizer(trained, fork_dir):
    ours, fork = json.loads(trained.read_text()), json.loads((fork_dir / "tokenizer.json").read_text())
    assert ours["added_tokens"] == fork["added_tokens"]  # 19 specials, ids 0..18, same flags
    for key in ("normalizer", "pre_tokenizer", "post_processor", "decoder", "truncation", "padding"):
        assert ours[key] == fork[key], key
    assert {k: v for k, v in ours["model"].items() if k not in ("vocab", "merges")} == {
        k: v for k, v in fork["model"].items() if k not in ("vocab", "merges")}
    assert len(ours["model"]["vocab"]) == VOCAB


def test_special_tokens_in_text_are_single_ids_and_not_learned_as_merges(trained):
    text = "<filename>a.py<commit_before>def f():\n    return 1<commit_msg>Fix<commit_after>x<|endoftext|>"
    fast = PreTrainedTokenizerFast(tokenizer_file=str(trained))
    ids = fast.encode(text)
    assert ids == Tokenizer.from_file(str(trained)).encode(text, add_special_tokens=False).ids
    assert ids[0] == 5 and ids[-1] == 0 and {15, 16, 17} <= set(ids)
    assert fast.decode(ids) == text
    vocab = Tokenizer.from_file(str(trained)).get_vocab()
    learned = [t for t, i in vocab.items() if i >= 19 and any(w in t for w in ("commit_", "endoftext", "filename>"))]
    assert learned == []
    unicode_text = "naïve 🐍 👩‍💻 \u3000 résumé\n\t"
    assert fast.decode(fast.encode(unicode_text)) == unicode_text


def test_same_input_gives_the_same_file(corpus, trained, tmp_path):
    again = tmp_path / "again" / "tokenizer.json"
    assert main(["--inputs", str(corpus), "--output", str(again), "--vocab-size", str(VOCAB)]) == 0
    assert again.read_bytes() == trained.read_bytes()


def test_auto_tokenizer_loads_the_folder_offline(trained):
    tok = AutoTokenizer.from_pretrained(str(trained.parent))
    assert (tok.bos_token_id, tok.eos_token_id, tok.unk_token_id, tok.pad_token_id) == (0, 0, 0, 4)
    assert len(tok) == VOCAB
    assert tok.encode("<commit_before>x = 1<|endoftext|>") == Tokenizer.from_file(str(trained)).encode(
        "<commit_before>x = 1<|endoftext|>", add_special_tokens=False).ids


def test_bad_input_names_file_line_and_field(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"inputs": "a", "targets": "b"}\n{"inputs": "a"}\n', encoding="utf-8")
    with pytest.raises(TokenizerInputError, match=r"bad\.jsonl:2: field 'targets'"):
        list(read_training_texts([bad]))
    out = tmp_path / "t" / "tokenizer.json"
    assert main(["--inputs", str(bad), "--output", str(out)]) == 2
    assert not out.exists()
    packed = tmp_path / "ok.jsonl.gz"
    packed.write_bytes(gzip.compress('{"inputs": "a\u2028b", "outputs": "c"}\n'.encode()))
    assert list(read_training_texts([packed])) == ["a\u2028b", "c"]  # "outputs" is OctoPack's name for targets
    text = tmp_path / "notes.txt"
    text.write_text("plain text\u2028still one file", encoding="utf-8")
    assert list(read_training_texts([text])) == ["plain text\u2028still one file"]


def test_empty_or_missing_inputs_are_errors_naming_the_inputs_flag(tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    out = tmp_path / "t" / "tokenizer.json"
    assert main(["--inputs", str(empty), "--output", str(out)]) == 2
    assert f"{empty}: no text to train on" in capsys.readouterr().err
    assert main(["--inputs", str(tmp_path / "missing.jsonl"), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--inputs" in err and "--input " not in err and "--input path" not in err
    assert not (tmp_path / "t").exists()
