"""Every output flag of every command, pointed at what is not provably its own output: nothing is ever lost.

Issue 16. For each flag of ``tests.attack_world.output_flags`` the flag is pointed at (a) a user's file or folder
with the output's extension, (b) the command's own input, (c) a look-alike of its output made by another tool
(a ``save_pretrained`` folder, the fork's datasets, save folder or index maps, another command's output with its
record, a file the old recognisers took for ours) and (d) a file or folder named like a leftover
(``train.txt.old-1999``). Each must end with exit status 2, one line naming the path, no traceback, and every
file there byte for byte as it was. (e): user files named like leftovers beside the output survive a run that
succeeds. All cases run in one interpreter (``tests/attack_driver.py``) to keep this fast.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from guardrails.file_set import file_with_record
from guardrails.output_records import OutputKind
from tests.attack_world import TOKENIZER, output_flags, tree
from tests.conftest import FORK_FIXTURES, REPO_ROOT
from tests.local_engine_fixtures import subprocess_env

USER = b"the user's own bytes\n"
LEFTOVER_NAMES = ("train.txt.old-1999", "results.old-2023")
ANOTHER = OutputKind("an output", "dataset.another_command")
# what the recognisers before issue 16 took for an output of the command: shapes and names, no record
OLD_LOOKALIKES = {
    "verify shards --json": b'{"match": true}\n', "verify logits --json": b'{"match": false}\n',
    "splits plan --json": b'{"row_length": 257}\n', "packing --report": b'{"row_length": 257, "groups": []}\n',
    "splits write --out": b'"train: 1.0 0:1 mine"\n', "evaluation compare --out": b"| prompt | language | mine |\n",
    "evaluation humaneval --samples --out": b'{"written_by": "python -m evaluation humaneval"}\n',
    "evaluation infill --out": b'{"written_by": "python -m evaluation infill"}\n',
    "evaluation mutantfix --out": b'{"written_by": "python -m evaluation mutantfix"}\n',
    "evaluation humanevalfix --canonical --out": b'{"written_by": "python -m evaluation humanevalfix"}\n',
    "evaluation humanevalfix --samples --out": b'{"written_by": "python -m evaluation humanevalfix"}\n',
    "evaluation humanevalfix --buggy --out": b'{"written_by": "python -m evaluation humanevalfix"}\n',
    "evaluation humaneval --canonical --out": b'{"written_by": "python -m evaluation humaneval"}\n',
    "evaluation report --out": b"<!-- written by python -m evaluation report -->\n# mine\n",
    "evaluation loss --out": b'{"written_by": "python -m evaluation loss"}\n',
    "train_tokenizer --output": b'{"model": {"type": "BPE"}}\n',
}


def _copy(src: Path, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    (shutil.copytree if src.is_dir() else shutil.copy)(src, dest)
    return dest


def _folder_lookalike(name: str, w: Path, out: Path) -> None:
    """Another tool's output of the same shape as the folder ``name`` writes."""
    if name in ("megatron_to_hf --out", "model_init --hf-out", "model_init --family --out", "export --out"):
        _copy(w / "saved_pretrained", out)
    elif name in ("model_init --out", "prepare_release --out"):
        _copy(w / "hf_release", out)  # hf_to_megatron's release root, with its record
    elif name == "hf_to_megatron --out":
        _copy(w / "base", out)  # model_init's release root, with its record
    elif name == "finetune training.save":
        _copy(w / "run", out)  # a save folder the fork wrote on a cluster: tracker, iter_0000005, no record
    elif name == "evaluation toy --out":  # the folder as the toy command wrote it before it had a record
        out.mkdir(parents=True)
        (out / "toy_python.jsonl").write_bytes(USER)
        (out / "toy.json").write_bytes(b'{"written_by": "python -m evaluation toy"}\n')
    elif name in ("evaluation humaneval --model --out", "evaluation humanevalfix --model --out"):
        out.mkdir(parents=True)
        for file in ("samples.jsonl", "results.json", "settings.json"):
            (out / file).write_bytes(f'{{"written_by": "python -m {name.split(" --out")[0]}"}}\n'.encode())
    elif name == "evaluation sweep --out":  # a sweep folder as written before it had a record
        out.mkdir(parents=True)
        (out / "sweep.json").write_bytes(b'{"written_by": "python -m evaluation sweep"}\n')
        (out / "sweep.png").write_bytes(USER)


def _prefix_files(prefix: Path, source: str) -> None:
    for role in ("inputs", "targets"):
        for ext in (".bin", ".idx"):
            shutil.copy(FORK_FIXTURES / f"{source}_{role}_document{ext}", f"{prefix}_{role}_document{ext}")


def _shards(w: Path, prefix: Path) -> None:
    from dataset.preprocessing.preprocess import main as preprocess

    for index in range(2):
        argv = ["--input", str(w / "pairs.jsonl"), "--tokenizer", str(TOKENIZER), "--output-prefix", str(prefix),
                "--workers", "1", "--num-shards", "2", "--shard-index", str(index)]
        assert preprocess(argv) == 0


def _map_name(name: str) -> str:
    if name.startswith("packing"):
        return "sample_train_indexmap_85ns_1234s_decoder_packed_batch_idx.npy"
    return "fim_code_content_document_train_indexmap_4ns_128sl_1234s_doc_idx.npy"


def _cases(w: Path, root: Path) -> list[tuple[str, str, list[str], int, Path]]:
    """(case, module, argv, expected exit status, the folder whose files must not change); plants each case."""
    cases = []
    for name, flag in output_flags(w).items():
        def add(letter: str, out: Path, rc: int = 2, own: Path | None = None) -> None:
            argv = flag.argv(out, own) if own is not None else flag.argv(out)
            cases.append((f"{name} ({letter})", flag.module, argv, rc, out.parent))

        case = root / name.replace(" ", "_").replace("-", "")
        if flag.shape == "file":
            out = case / "a" / f"x{flag.suffix}"
            out.parent.mkdir(parents=True)
            out.write_bytes(USER)
            add("a", out)
            if flag.own_input is not None:
                own = _copy(flag.own_input, case / "b" / flag.own_input.name)
                if flag.own_input.suffix == ".bin":  # a dataset: its index goes with it
                    _copy(flag.own_input.with_suffix(".idx"), own.with_suffix(".idx"))
                if name in ("docstring_pairs --output", "code_to_jsonl --output"):  # the source tree around it
                    _copy(flag.own_input.parent, case / "b" / "src")
                    own = case / "b" / "src" / flag.own_input.name
                add("b", own, own=own)
            out = case / "c" / f"x{flag.suffix}"
            out.parent.mkdir(parents=True)
            with file_with_record(out, ANOTHER) as handle:  # provably an output, of another command
                handle.write(USER)
            add("c", out)
            if name in OLD_LOOKALIKES:
                out = case / "c2" / f"x{flag.suffix}"
                out.parent.mkdir(parents=True)
                out.write_bytes(OLD_LOOKALIKES[name])
                add("c2", out)
            if name == "train_tokenizer --output":  # issue 16 item 9: a model folder's own tokenizer files
                add("c3", _copy(w / "saved_pretrained", case / "c3" / "model") / "other.json")
            out = case / "d" / f"x{flag.suffix}.old-1999"
            out.parent.mkdir(parents=True)
            out.write_bytes(USER)
            add("d", out)
        elif flag.shape == "folder":
            out = case / "a" / "out"
            out.mkdir(parents=True)
            (out / f"weights{flag.suffix}").write_bytes(USER)
            add("a", out)
            if flag.own_input is not None:
                own = _copy(flag.own_input, case / "b" / flag.own_input.name)
                add("b", own, own=own)
            out = case / "c" / "out"
            _folder_lookalike(name, w, out)
            if out.exists():
                add("c", out)
            out = case / "d" / "out"
            out.mkdir(parents=True)
            for leftover in LEFTOVER_NAMES:
                (out / leftover).write_bytes(USER)
            add("d", out)
        elif flag.shape == "prefix":
            prefix = case / "a" / "p"
            prefix.parent.mkdir(parents=True)
            Path(f"{prefix}{flag.suffix}").write_bytes(USER)
            if name.startswith("merge_shards"):
                _shards(w, prefix)
            add("a", prefix)
            if flag.own_input is not None:
                prefix = case / "b" / "p"
                own = _copy(flag.own_input, Path(f"{prefix}{flag.suffix}"))
                add("b", prefix, own=own)
            prefix = case / "c" / "p"
            prefix.parent.mkdir(parents=True)
            _prefix_files(prefix, "sample")  # the fork's own files at the prefix: no manifest
            if name.startswith("merge_shards"):
                _shards(w, prefix)
            add("c", prefix)
            prefix = case / "e" / "p"
            prefix.parent.mkdir(parents=True)
            for leftover in (f"p{flag.suffix}.old-1999", f".p{flag.suffix}.tmp-1999", f"p{flag.suffix}.tmp-1999"):
                (prefix.parent / leftover).write_bytes(USER)
            if name.startswith("merge_shards"):
                _shards(w, prefix)
            add("e", prefix, rc=0)
        elif flag.shape == "cache":
            out = case / "a" / "maps"
            out.mkdir(parents=True)
            (out / _map_name(name)).write_bytes(USER)
            add("a", out)
            out = case / "c" / "maps"
            out.mkdir(parents=True)
            # the fork's own map for this data (its cache sits beside the data; here under our file name)
            source = FORK_FIXTURES / _map_name(name) if name.startswith("packing") else (
                REPO_ROOT / "tests" / "fixtures" / "fork_fim" / "code_content_document_train_indexmap_240ns_128sl_1234s_doc_idx.npy")
            shutil.copy(source, out / _map_name(name))
            add("c", out)
            out = case / "e" / "maps"
            out.mkdir(parents=True)
            for leftover in (f"{_map_name(name)}.old-1999", f".{_map_name(name)}.tmp-1999"):
                (out / leftover).write_bytes(USER)
            add("e", out, rc=0)
        if flag.cheap and flag.shape in ("file", "folder"):
            out = case / "e" / (f"x{flag.suffix}" if flag.shape == "file" else "out")
            out.parent.mkdir(parents=True)
            for leftover in (f"{out.name}.old-1999", f".{out.name}.tmp-1999", f"{out.name}.tmp-1999"):
                (out.parent / leftover).write_bytes(USER)
            add("e", out, rc=0)
    return cases


@pytest.fixture(scope="module")
def attacked(attack_world, tmp_path_factory):
    root = tmp_path_factory.mktemp("lookalikes")
    cases = _cases(attack_world, root)
    before = {name: tree(folder) for name, _, _, _, folder in cases}
    batch = [(name, module, argv) for name, module, argv, _, _ in cases]
    run = subprocess.run([sys.executable, "-m", "tests.attack_driver", json.dumps(batch)], cwd=REPO_ROOT,
                         env=dict(subprocess_env(), OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(run.stdout.strip().splitlines()[-1])
    return {name: (rc, folder, before[name], tree(folder), results[name]) for name, _, _, rc, folder in cases}


# commands that write no file a user names (stdout, or the outputs of the commands they run, which are above)
NO_OUTPUT_FLAG = {"training.fork_flags": "prints the flags as JSON", "dataset.launch": "launch.json only, claimed",
                  "scripts.demo": "runs the commands above; its own folders: tests/test_demo_data_stage.py",
                  "evaluation.__main__": "evaluation.commands", "scripts.check_shards": "conversion.verify shards",
                  "training.fork_probe": "only reads and prints JSON (preflight's probe of the job's environment)"}


def test_every_command_is_attacked(attack_world):
    modules = {".".join(p.relative_to(REPO_ROOT).with_suffix("").parts)
               for folder in ("dataset", "training", "conversion", "evaluation", "scripts")
               for p in (REPO_ROOT / folder).glob("*.py") if "raise SystemExit(run_command(" in p.read_text()}
    attacked = {flag.module for flag in output_flags(attack_world).values()}
    assert modules - attacked - set(NO_OUTPUT_FLAG) == set()


# the flags of an evaluation subcommand that choose what is scored: each makes another output of the same --out
EVALUATION_SOURCES = ("--samples", "--model", "--canonical", "--buggy")


def test_every_evaluation_output_is_attacked(attack_world):
    """Built from ``evaluation.commands``' parser: a new subcommand, or a new source of an existing one, with an
    output option must join the matrix (named ``evaluation SUB [SOURCE] OPTION``)."""
    import argparse

    from evaluation.commands import build_parser

    flags = output_flags(attack_world)
    options = {name.split()[-1] for name in flags if name.split()[-1].startswith("--")}  # --out, --output, --json...
    subcommands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    wanted = set()
    for sub, parser in subcommands.items():
        given = {o for action in parser._actions for o in action.option_strings}
        sources = [s for s in EVALUATION_SOURCES if s in given]
        for out in sorted(given & options):
            wanted |= ({f"evaluation {sub} {s} {out}" for s in sources} if len(sources) > 1
                       else {f"evaluation {sub} {out}"})
    assert len(subcommands) >= 9 and "evaluation sweep --out" in wanted
    assert sorted(wanted - set(flags)) == []


def test_every_output_flag_has_each_attack(attacked, attack_world):
    letters: dict[str, set[str]] = {}
    for case in attacked:
        flag, letter = case.rsplit(" (", 1)
        letters.setdefault(flag, set()).add(letter.rstrip(")"))
    for name, flag in output_flags(attack_world).items():
        wanted = {"a", "c", "d"} if flag.shape in ("file", "folder") else {"a", "c", "e"}
        wanted |= {"b"} if flag.own_input is not None and flag.shape != "cache" else set()
        assert wanted <= letters[name], (name, sorted(letters[name]))


@pytest.mark.parametrize("letter", ["a", "b", "c", "d", "e"])
def test_nothing_that_is_not_the_commands_own_output_is_ever_lost(attacked, letter):
    failures = []
    for case, (rc, folder, before, after, result) in attacked.items():
        if f"({letter}" not in case:
            continue
        changed = sorted(k for k in before if after.get(k) != before[k])
        stderr = result["stderr"].strip()
        last = stderr.splitlines()[-1] if stderr else ""
        if result["rc"] != rc or "Traceback" in stderr or changed:
            failures.append(f"{case}: exit {result['rc']} (expected {rc}), changed {changed}: {stderr[-800:]}")
        elif rc == 2 and ("error" not in last or str(folder) not in last):
            failures.append(f"{case}: the last line does not name the refused path: {last}")
    assert not failures, "\n".join(failures)
