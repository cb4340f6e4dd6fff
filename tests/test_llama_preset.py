"""scripts/configs/llama2-7b-go-rust.yaml end to end at toy scale: a Llama-style tokenizer (</s> as end of
document, no <|endoftext|>), the Go and Rust folders of a StarCoder-data-like parquet tree, preflight and
submit --dry-run at the preset's full size (8 nodes x 8 GPUs), then the same config shrunk to a CPU run and
exported."""
import json
import shlex

import numpy as np
import pytest

pytest.importorskip("pyarrow", reason="pyarrow is not installed (pip install codeft[parquet])")
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from tests.conftest import FORK_FIXTURES, REPO_ROOT  # noqa: E402

PRESET = REPO_ROOT / "scripts" / "configs" / "llama2-7b-go-rust.yaml"
VOCAB = 512


def _texts():
    records = [json.loads(x) for x in (FORK_FIXTURES / "sample.jsonl").read_text(encoding="utf-8").split("\n") if x]
    return [r["inputs"] + r["targets"] for r in records]


def _llama_style_tokenizer(folder):
    """Byte-level BPE with Llama's special tokens: <unk> 0, <s> 1 (prepended), </s> 2 (eos in the config)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer, tok.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    tok.train_from_iterator(_texts(), trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=["<unk>", "<s>", "</s>"],
                                                          initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    folder.mkdir(parents=True)
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}))
    return folder / "tokenizer.json"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from conversion.tokenizer_files import write_tokenizer_files
    from training.local.hf_family.tiny_models import random_hf_model, tiny_hf_config
    from training.local.model_init import TinyModelSpec

    tmp = tmp_path_factory.mktemp("llama_preset")
    tokenizer = _llama_style_tokenizer(tmp / "tok")
    config = tiny_hf_config("llama", VOCAB, 2, None, TinyModelSpec(layers=2, hidden=64, heads=4, max_positions=4096,
                                                                    dropout=0.0))
    config.bos_token_id = 1
    model = random_hf_model(config, 5)
    model.save_pretrained(str(tmp / "Llama-2-tiny-hf"))
    write_tokenizer_files(tmp / "tok", tmp / "Llama-2-tiny-hf", 4096)
    texts = _texts()
    root = tmp / "starcoderdata"
    for language, part in (("go", texts[:150]), ("rust", texts[150:300]), ("python", texts[300:])):
        (root / language).mkdir(parents=True)
        pq.write_table(pa.table({"content": part, "max_stars_count": [1] * len(part)}),
                       root / language / "train-00000-of-00001.parquet", row_group_size=40)
    site = tmp / "site.env"
    site.write_text("export X=1\n")
    prefix = tmp / "data" / "code"
    overrides = [f"data.inputs=[{root}]", f"data.tokenizer={tokenizer}", f"data.output_prefix={prefix}",
                 f"training.load={tmp / 'Llama-2-tiny-hf'}", f"training.tokenizer={tokenizer}",
                 f"training.save={tmp / 'run'}", f"training.pretrain.data_path={prefix}_content_document",
                 f"cluster.site_env={site}"]
    return tmp, overrides


def test_preset_data_reads_go_and_rust_and_ends_documents_with_eos(setup):
    from dataset.preprocessing import preprocess
    from dataset.formats.indexed_dataset import IndexedDataset
    from dataset.formats.preprocess_manifest import manifest_path, read_manifest

    tmp, overrides = setup
    data_overrides = [o for o in overrides if o.startswith("data.")]
    assert preprocess.main(["--config", str(PRESET), *data_overrides, "data.num_shards=1", "data.workers=1"]) == 0
    manifest = read_manifest(manifest_path(tmp / "data" / "code"))
    assert [p.rsplit("/", 2)[1] for p in (i["path"] for i in manifest["inputs"])] == ["go", "rust"]
    assert manifest["records_in"] == 300 and manifest["tokenizer"]["eod_id"] == 2
    data = IndexedDataset(str(tmp / "data" / "code_content_document"))
    first = np.asarray(data[0])
    assert first[0] == 1 and first[-1] == 2 and data.max_token_id() < VOCAB  # <s> ... </s>, no added token


def test_preset_passes_preflight_and_submits_8_nodes_of_8_gpus(setup, capsys, monkeypatch):
    from runconfig.run_config import load_run_config
    from training.cluster.launch import main as launch

    tmp, overrides = setup
    monkeypatch.chdir(tmp)
    assert launch(["preflight", "--config", str(PRESET), *overrides]) == 0, capsys.readouterr().err
    assert "preflight: OK" in capsys.readouterr().out
    assert launch(["submit", "--config", str(PRESET), *overrides, "--dry-run"]) == 0
    out = capsys.readouterr().out
    argv = shlex.split(next(line for line in out.splitlines() if line.startswith("sbatch ")))
    assert "--nodes=8" in argv and "--gpus-per-node=8" in argv and argv[-2:] == ["8", "29500"]
    job_dir = next((tmp / "run" / "slurm" / "jobs").iterdir())
    run = load_run_config(job_dir / "run_config.yaml")
    t = run.training
    assert (t.engine, t.mode, t.fsdp, t.dtype, t.seq_length) == ("local", "pretrain", True, "bfloat16", 4096)
    # 2,048 = 16 per GPU x 64 GPUs x 2 accumulation steps
    assert t.global_batch_size == t.micro_batch_size * 64 * 2 and (t.lr, t.lr_decay_style) == (8e-5, "cosine")
    # the rules that catch a broken start: a sequence past the model's positions, FSDP2 on one process
    assert launch(["preflight", "--config", str(PRESET), *overrides, "training.seq_length=8192",
                   "cluster.nodes=1", "cluster.gpus_per_node=1"]) == 2
    err = capsys.readouterr().err
    assert "training.seq_length 8192 exceeds the 4096 positions" in err
    assert "training.fsdp shards the model over several processes" in err


def test_preset_shrunk_to_a_cpu_run_trains_and_exports(setup):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.local.export import main as export
    from training.local.finetune import main as finetune

    tmp, overrides = setup
    small = ["training.seq_length=64", "training.micro_batch_size=2", "training.global_batch_size=4",
             "training.train_iters=2", "training.save_interval=2", "training.eval_interval=2", "training.eval_iters=1",
             "training.lr_warmup_samples=0", "training.fsdp=false", "training.dtype=float32", "training.cpu_threads=1",
             "training.wandb.mode=disabled", "training.progress_bar=false", "training.tensorboard=false",
             f"training.save={tmp / 'small'}", "training.pretrain.split=80,20,0"]
    assert finetune(["--config", str(PRESET), *[o for o in overrides if o.startswith("training.")], *small]) == 0
    assert export(["--save", str(tmp / "small"), "--out", str(tmp / "hf")]) == 0
    tokenizer = AutoTokenizer.from_pretrained(str(tmp / "hf"))
    assert tokenizer.eos_token == "</s>"  # the model's own tokenizer files, not StarCoder's
    model = AutoModelForCausalLM.from_pretrained(str(tmp / "hf"))
    assert model.config.model_type == "llama" and model.config.vocab_size == VOCAB
