"""Infilling, commit fixes, side-by-side prompts and held-out loss, on HumanEval and a tiny in-process model."""
import json

import numpy as np
import pytest
import torch

from evaluation import commands
from evaluation.commit_fixes import candidate_tasks, commit_prompt, fix_program, mutate
from evaluation.heldout_loss import heldout_loss
from evaluation.humaneval_tasks import load_problems
from evaluation.infilling import (MissingFimTokens, fim_token_ids, infilled_program, psm_prompt_ids,
                                  single_line_tasks)
from evaluation.sandbox import Sandbox, SandboxLimits
from evaluation.side_by_side import SIDE_BY_SIDE_PROMPTS, complete_prompts, markdown_table
from evaluation.task_runs import run_commit_fixes, run_infilling, summary_line
from tests.conftest import FORK_FIXTURES
from tests.evaluation_fixtures import tiny_hf_folder, tiny_tokenizer
from tests.tiny_hf_checkpoints import tiny_model


@pytest.fixture(scope="module")
def problems():
    return load_problems()


@pytest.fixture(scope="module")
def box():
    return Sandbox(SandboxLimits(timeout_s=3.0))


def word_tokenizer(tokens):
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(["<|endoftext|>", "[UNK]", *tokens])}
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="[UNK]")))


def test_single_line_tasks_mask_each_line_and_rebuild_the_solution(problems, box):
    tasks = single_line_tasks(problems, limit=2)
    first = [t for t in tasks if t.problem_id == "HumanEval/0"]
    solution = problems["HumanEval/0"]["canonical_solution"]
    assert len(first) == sum(1 for line in solution.split("\n") if line.strip())
    for task in first:
        assert task.prefix + task.middle + task.suffix == problems["HumanEval/0"]["prompt"] + solution
        assert task.middle.endswith("\n") and "\n" not in task.middle[:-1] and task.middle.strip()
        assert task.prefix.endswith("\n")  # HumanEval-SingleLineInfilling: the line's newline is in the middle
    right = box.run(infilled_program(problems["HumanEval/0"], first[-1], first[-1].middle))
    wrong = box.run(infilled_program(problems["HumanEval/0"], first[-1], "    return True\n"))
    assert right.result == "passed" and wrong.status == "failed"


def test_fim_tokens_by_name_in_both_spellings(problems):
    starcoder = tiny_tokenizer()
    prefix, suffix, middle = fim_token_ids(starcoder)
    assert (prefix, suffix, middle) == tuple(starcoder.convert_tokens_to_ids(["<fim_prefix>", "<fim_suffix>",
                                                                              "<fim_middle>"]))
    task = single_line_tasks(problems, limit=1)[0]
    ids = psm_prompt_ids(starcoder, task)
    assert ids[0] == prefix and ids[-1] == middle and ids.count(suffix) == 1
    assert starcoder.decode(ids[1:ids.index(suffix)]) == task.prefix  # PSM: prefix, then suffix, then middle
    assert starcoder.decode(ids[ids.index(suffix) + 1:-1]) == task.suffix
    santacoder = word_tokenizer(["<fim-prefix>", "<fim-middle>", "<fim-suffix>"])
    assert fim_token_ids(santacoder) == (2, 4, 3)
    with pytest.raises(MissingFimTokens, match="<fim_prefix>"):
        fim_token_ids(word_tokenizer(["def"]))


def test_run_infilling_on_the_tiny_model(problems, box):
    summary = run_infilling(tiny_model(seed=3), tiny_tokenizer(), problems, box, limit=1, workers=2,
                            max_new_tokens=8)
    assert summary["tasks"] == len(single_line_tasks(problems, limit=1)) and summary["problems"] == 1
    assert all("\n" not in r["infilled"][:-1] for r in summary["results"])
    assert summary["layout"].startswith("HumanEval-SingleLineInfilling")
    assert summary["exact_match"] == sum(r["exact_match"] for r in summary["results"]) / summary["tasks"]
    assert 0.0 <= summary["pass@1"] <= 1.0
    assert summary["problems_total"] == len(problems) and summary["subset"].startswith(f"subset: 1 of {len(problems)}")
    assert summary_line(summary).endswith(f"(1 problems) - a SUBSET ({summary['subset']}), not comparable with "
                                          "full-benchmark numbers")
    whole = run_infilling(tiny_model(seed=3), tiny_tokenizer(), dict(list(problems.items())[:1]), box, limit=None,
                          workers=2, max_new_tokens=8)
    assert whole["subset"] is None and "SUBSET" not in summary_line(whole)


def test_the_generated_middle_keeps_its_newline():
    from evaluation.infilling import middle_from

    assert middle_from("    return x\n    y = 2\n") == "    return x\n"
    assert middle_from("    return x<|endoftext|>\nmore") == "    return x"
    assert middle_from("    return x") == "    return x"


def test_mutations_are_deterministic_and_leave_strings_alone():
    code = "    if a < b and s == '<':  # a < b\n        return a + 1\n    return 0\n"
    assert mutate(code, "flipped_comparison", ["a", "b"]) == code.replace("a < b and", "a >= b and", 1)
    assert mutate(code, "off_by_one", ["a", "b"]) == code.replace("a + 1", "a + 2")
    assert mutate(code, "swapped_variable", ["a", "b"]) == code.replace("if a <", "if b <")
    assert mutate("    return x\n", "off_by_one", ["x"]) is None


def test_commit_fix_tasks_fail_until_fixed(problems, box):
    tasks = candidate_tasks(problems, limit=3)
    assert {t.mutation for t in tasks} == {"flipped_comparison", "off_by_one", "swapped_variable"}
    task = tasks[0]
    problem = problems[task.problem_id]
    assert commit_prompt(task, problem["entry_point"]) == (
        f"<commit_before>{task.buggy_code}<commit_msg>Fix bugs in {problem['entry_point']}.<commit_after>")
    assert box.run(fix_program(task.buggy_code, problem)).status == "failed"
    assert box.run(fix_program(problem["prompt"] + problem["canonical_solution"], problem)).result == "passed"
    summary = run_commit_fixes(tiny_model(seed=3), tiny_tokenizer(), problems, box, limit=3, workers=2,
                               max_new_tokens=8)
    assert summary["tasks"] + summary["mutants_still_passing"] == len(tasks) and summary["tasks"] > 0
    assert summary["pass@1"] == 0.0  # eight random tokens fix nothing
    assert summary["subset"].startswith(f"subset: 3 of {len(problems)}") and "SUBSET" in summary_line(summary)


def test_side_by_side_table():
    assert {p.language for p in SIDE_BY_SIDE_PROMPTS} == {"python", "go", "rust"}
    model, tokenizer = tiny_model(seed=3), tiny_tokenizer()
    rows = complete_prompts({"base": (model, tokenizer), "fine-tuned": (tiny_model(seed=4), tokenizer)},
                            max_new_tokens=4)
    table = markdown_table(rows, ["base", "fine-tuned"])
    lines = table.splitlines()
    assert lines[0] == "| prompt | language | base | fine-tuned |" and len(lines) == 2 + len(SIDE_BY_SIDE_PROMPTS)
    assert all(line.count(" | ") == 3 for line in lines[2:])  # no stray cell separators from the code


def test_heldout_loss_matches_hugging_face_label_loss():
    model = tiny_model(seed=3)
    prefix = str(FORK_FIXTURES / "sample")
    result = heldout_loss(model, prefix, max_tokens=256, max_pairs=6, batch_size=4)
    from dataset.formats.indexed_dataset import IndexedDataset

    inputs, targets = IndexedDataset(f"{prefix}_inputs_document"), IndexedDataset(f"{prefix}_targets_document")
    total, count, skipped = 0.0, 0, 0
    for i in range(6):
        source, target = inputs[i].astype(np.int64).tolist(), targets[i].astype(np.int64).tolist()
        if len(source) + len(target) > 256:
            skipped += 1
            continue
        ids = torch.tensor([source + target])
        labels = torch.tensor([[-100] * len(source) + target])
        with torch.no_grad():
            loss = model(input_ids=ids, labels=labels).loss  # HF's own shift and mean over target tokens
        total += float(loss) * len(target)
        count += len(target)
    assert result["tokens"] == count and result["skipped_too_long"] == skipped
    assert result["loss"] == pytest.approx(total / count, rel=1e-5)


def test_compare_and_loss_commands(tmp_path):
    base, tuned = tiny_hf_folder(tmp_path / "base", seed=3), tiny_hf_folder(tmp_path / "tuned", seed=4)
    table = tmp_path / "side_by_side.md"
    assert commands.main(["compare", "--base", str(base), "--tuned", str(tuned), "--out", str(table),
                          "--max-new-tokens", "4"]) == 0
    assert table.read_text().startswith("| prompt | language | base | fine-tuned |")
    out = tmp_path / "loss.json"
    assert commands.main(["loss", "--base", str(base), "--tuned", str(tuned), "--out", str(out),
                          "--valid-prefix", str(FORK_FIXTURES / "sample"), "--max-pairs", "4"]) == 0
    report = json.loads(out.read_text())
    assert set(report) == {"written_by", "base", "fine-tuned"} and report["base"]["loss"] != report["fine-tuned"]["loss"]
