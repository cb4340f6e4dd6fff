"""``python -m training.export`` for every family besides Llama (tests/test_export.py): StarCoder2 (a tied head,
which the folder leaves to the embedding; under FSDP2 the distributed checkpoint holds the head as an entry of its
own), Mistral and Qwen2 (sliding windows) export to folders that ``AutoModelForCausalLM`` loads with exactly the
logits of the run's checkpointed weights."""
import pytest
import torch

from tests.local_engine_fixtures import tiny_hf
from tests.test_engine_fsdp_hf import _run
from tests.test_export import EXTRA, TOKENS, _cfg, _exported_logits
from training.local.engine import train
from training.local.export import main as export_main
from training.local.hf_family.checkpoint import full_weights, read_train_state


def _checkpoint_model(folder):
    """The model of the checkpoint's own weights (built independently of the export): a tied head is the embedding."""
    from transformers import AutoConfig, AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(str(folder)), dtype=torch.float32)
    weights = full_weights(folder, read_train_state(folder))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    assert not unexpected and set(missing) <= ({"lm_head.weight"} if model.config.tie_word_embeddings else set())
    model.tie_weights()
    return model.eval()


@pytest.mark.parametrize("family, processes", [("starcoder2", 1), ("starcoder2", 2), ("mistral", 1), ("qwen2", 1)],
                         ids=["starcoder2", "starcoder2-fsdp2", "mistral", "qwen2"])
def test_export_reloads_with_the_logits_of_the_run(tmp_path, family, processes):
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    base = tiny_hf(tmp_path, family, dropout=0.0)
    if processes == 1:
        train(_cfg(tmp_path, base, tmp_path / "run"), say=lambda _m: None)
    else:
        _run(tmp_path, base, tmp_path / "run", processes, fsdp="true", **EXTRA)
    layout = read_train_state(tmp_path / "run" / "iter_0000002")["layout"]
    assert layout == ("distributed" if processes > 1 else "safetensors")
    out = tmp_path / "hf"
    assert export_main(["--save", str(tmp_path / "run"), "--out", str(out)]) == 0
    engine = _checkpoint_model(tmp_path / "run" / "iter_0000002")
    with torch.no_grad():
        torch.testing.assert_close(_exported_logits(out), engine(input_ids=TOKENS).logits, rtol=0, atol=0)
        start = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32).eval()
        assert (start(input_ids=TOKENS).logits - engine(input_ids=TOKENS).logits).abs().max() > 1e-4  # it trained
    exported = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32)
    assert exported.config.model_type == family
    names = set()
    for shard in out.glob("model*.safetensors"):
        with safe_open(str(shard), "pt") as handle:
            names |= set(handle.keys())
    tied = family == "starcoder2"
    assert ("lm_head.weight" in names) is not tied
    assert (exported.lm_head.weight is exported.model.embed_tokens.weight) is tied
    assert set(exported.state_dict()) == set(engine.state_dict())
