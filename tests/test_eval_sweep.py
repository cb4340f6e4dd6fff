"""`python -m evaluation sweep` over a run's checkpoints, and the demo's TOY task family (`python -m evaluation toy`)."""
import json

import pytest

from conversion.megatron_checkpoint import write_megatron_checkpoint
from conversion.megatron_to_hf import load_hf_model_from_megatron
from evaluation import commands
from evaluation.heldout_loss import heldout_loss
from evaluation.toy_tasks import toy_problems, toy_training_pairs
from tests.conftest import FORK_FIXTURES
from tests.evaluation_fixtures import TOKENIZER
from tests.tiny_hf_checkpoints import tiny_model


@pytest.fixture(scope="module")
def toy_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("toy")
    assert commands.main(["toy", "--out", str(out), "--problems", "4", "--pairs-per-language", "10"]) == 0
    return out


def test_toy_problems_never_leak_into_the_fine_tuning_pairs(toy_folder):
    manifest = json.loads((toy_folder / "toy.json").read_text())
    assert manifest["files"]["toy_pairs.jsonl"] == 20 and "TOY" in manifest["note"]
    tests = [json.loads(line) for line in (toy_folder / "toy_python.jsonl").read_text().splitlines()]
    bodies = {t["canonical_solution"].strip() for t in tests}
    pairs = toy_training_pairs(("python",), 500, 1234, 4)
    assert not bodies & {p["targets"].removesuffix("<|endoftext|>").strip() for p in pairs}  # other combinations
    assert toy_problems("python", 4, 1234).keys() == {t["task_id"] for t in tests}
    again = toy_folder.parent / "again"  # a rerun into its own folder replaces it; a folder with other files is refused
    assert commands.main(["toy", "--out", str(toy_folder), "--problems", "4", "--pairs-per-language", "10"]) == 0
    (again).mkdir()
    (again / "mine.txt").write_text("x")
    assert commands.main(["toy", "--out", str(again)]) == 2


def test_sweep_evaluates_each_saved_checkpoint_and_plots(tmp_path, toy_folder):
    run = tmp_path / "run"
    for iteration, seed in ((10, 3), (15, 4)):
        model = tiny_model(seed=seed)
        write_megatron_checkpoint(run, iteration, {k: v.detach().clone() for k, v in model.state_dict().items()},
                                  model.config)
    out = tmp_path / "sweep"
    assert commands.main(["sweep", "--run", str(run), "--every", "10", "--out", str(out), "--tokenizer", str(TOKENIZER),
                          "--problems", str(toy_folder / "toy_python.jsonl"), "--limit", "2", "--n", "1",
                          "--temperature", "0", "--max-length-generation", "48", "--k", "1", "--no-progress",
                          "--valid-prefix", str(FORK_FIXTURES / "sample"), "--max-pairs", "16"]) == 0
    summary = json.loads((out / "sweep.json").read_text())
    assert [row["iteration"] for row in summary["checkpoints"]] == [10, 15]  # multiples of 10, and the last
    for row in summary["checkpoints"]:
        model = load_hf_model_from_megatron(run, tag=str(row["iteration"]))
        expected = heldout_loss(model.eval(), str(FORK_FIXTURES / "sample"), model.config.n_positions, 16)["loss"]
        assert row["heldout_loss"] == pytest.approx(expected, rel=1e-5)
        assert (out / f"iter_{row['iteration']:07d}" / "results.json").is_file() and row["subset"]
    assert (out / "sweep.png").read_bytes()[:4] == b"\x89PNG" and not (out / ".hf-checkpoint").exists()
    from PIL import Image

    with Image.open(out / "sweep.png") as png:  # the --limit run's plot says it is a SUBSET in its title
        assert png.text["Title"].startswith("humaneval python - SUBSET: 2 of ")
    assert summary["best_iteration"] in (10, 15)


def test_sweep_refuses_a_non_positive_every_before_reading_the_run(tmp_path, capsys):
    """--every is range-checked with every numeric flag (commands.FLAG_BOUNDS), before --run is even listed."""
    out = tmp_path / "sweep"
    assert commands.main(["sweep", "--run", str(tmp_path / "missing"), "--every", "0", "--out", str(out)]) == 2
    assert "--every must be >= 1, got 0" in capsys.readouterr().err and not out.exists()
