"""training.model_init: a tiny release checkpoint that records its tokenizer, so conversion needs no --tokenizer."""
import json
from pathlib import Path

from tokenizers import Tokenizer

from conversion.megatron_checkpoint import read_megatron_checkpoint
from conversion.megatron_to_hf import convert
from training.model_init import main


def test_tiny_release_records_its_tokenizer_and_converts_without_one(fork_dir: Path, tmp_path: Path, capsys) -> None:
    tokenizer = fork_dir / "tokenizer.json"
    out = tmp_path / "base"
    assert main(["--tokenizer", str(tokenizer), "--out", str(out), "--layers", "1", "--hidden", "32",
                 "--heads", "4", "--max-positions", "64"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert (out / "latest_checkpointed_iteration.txt").read_bytes() == b"release"
    ckpt = read_megatron_checkpoint(out)
    assert ckpt.args.tokenizer_file == str(tokenizer.resolve())
    vocab = Tokenizer.from_file(str(tokenizer)).get_vocab_size()
    assert ckpt.hf_config.vocab_size == printed["vocab_size"] == -(-vocab // 128) * 128  # Megatron's padding
    # the printed count is that of the weights written (the LM head is the tied embedding)
    assert printed["params"] == sum(t.numel() for k, t in ckpt.hf_state_dict.items() if k != "lm_head.weight")
    hf = convert(out, tmp_path / "hf", progress=False)
    assert (hf / "tokenizer.json").read_bytes() == tokenizer.read_bytes()


def test_outputs_holding_something_else_are_refused_untouched(fork_dir: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"  # a training run's save folder: its tracker names an iteration
    (run / "iter_0000012").mkdir(parents=True)
    (run / "latest_checkpointed_iteration.txt").write_text("12")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("keep me")
    args = ["--tokenizer", str(fork_dir / "tokenizer.json"), "--layers", "1", "--hidden", "32", "--heads", "4"]
    assert main([*args, "--out", str(run)]) == 2
    assert "names iteration 12" in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "base"), "--hf-out", str(notes)]) == 2
    assert "not a Hugging Face model folder" in capsys.readouterr().err
    assert (run / "latest_checkpointed_iteration.txt").read_text() == "12" and not (run / "release").exists()
    assert [p.name for p in notes.iterdir()] == ["todo.txt"] and not (tmp_path / "base").exists()
    assert main([*args, "--out", str(tmp_path / "base"), "--hf-out", str(tmp_path / "hf")]) == 0
    assert main([*args, "--out", str(tmp_path / "base"), "--hf-out", str(tmp_path / "hf")]) == 0  # its own: replaced


def test_hf_out_is_a_folder_auto_tokenizer_and_auto_model_load(fork_dir: Path, tmp_path: Path, capsys) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = fork_dir / "tokenizer.json"
    hf = tmp_path / "hf"
    assert main(["--tokenizer", str(tokenizer), "--out", str(tmp_path / "base"), "--hf-out", str(hf), "--layers", "1",
                 "--hidden", "32", "--heads", "4", "--max-positions", "64"]) == 0
    loaded = AutoTokenizer.from_pretrained(str(hf))
    reference = Tokenizer.from_file(str(tokenizer))
    text = "def add(a, b):\n    return a + b<|endoftext|>"
    assert loaded(text)["input_ids"] == reference.encode(text).ids
    assert loaded.eos_token_id == 0 and AutoModelForCausalLM.from_pretrained(str(hf)).config.vocab_size == 8192


def test_release_records_the_tokenizers_vocab_so_exports_keep_its_rows(fork_dir: Path, tmp_path: Path) -> None:
    """A tokenizer of 8195 tokens: 8320 embedding rows (padded to 128), but the model's vocab is 8195."""
    tokenizer = Tokenizer.from_file(str(fork_dir / "tokenizer.json"))
    tokenizer.add_tokens(["<extra_a>", "<extra_b>", "<extra_c>"])
    odd = tmp_path / "tokenizer.json"
    tokenizer.save(str(odd))
    assert tokenizer.get_vocab_size() == 8195
    out = tmp_path / "base"
    assert main(["--tokenizer", str(odd), "--out", str(out), "--layers", "1", "--hidden", "32", "--heads", "4",
                 "--max-positions", "64"]) == 0
    ckpt = read_megatron_checkpoint(out)
    assert ckpt.args.true_vocab_size == 8195 and ckpt.args.padded_vocab_size == 8320
    hf = convert(out, tmp_path / "hf", progress=False)
    assert json.loads((hf / "config.json").read_text())["vocab_size"] == 8195
