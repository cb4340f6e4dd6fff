"""A file output and its record appear together: a SIGTERM between the two never leaves a file without its record.

Issue 16 (item 8's rule for one file): a command that wrote its output and then, in a second step, the record
``OUT.manifest.json`` that proves it, left after an interrupt between the two a file no record proves (every later
run refused it; the user had to delete it by hand), or a new file beside the earlier record (refused the same
way: "changed since ... was written"). Here a real SIGTERM is sent to the process at the moment the record is
renamed into place, for a representative set of the commands that write one file (and the report, a set of
several), both into an empty folder and over an earlier output of the same command. The output must then be
whole and proven by its record (the signal acts once the renames are done: exit 143, "OUT is complete"), no
temporary may be left, and a rerun must succeed. The index-map caches had the same gap (maps, then their key
file, which is their record): an interrupt at the key left maps that every later run refused.
"""
from __future__ import annotations

import importlib
import os
import signal
from pathlib import Path
from typing import Callable

import pytest

from guardrails.command_errors import EXIT_TERMINATED, run_command
from guardrails.output_paths import forget_claims, is_leftover
from guardrails.output_records import fingerprint, read_record, sidecar_record
from tests.attack_world import output_flags, tree


def _set(flag: str, value: str) -> Callable[[list[str]], list[str]]:
    """An argv change: ``flag``'s value replaced (another output than the first run's)."""
    return lambda argv: [*argv[: argv.index(flag) + 1], value, *argv[argv.index(flag) + 2:]]


def _add(*extra: str) -> Callable[[list[str]], list[str]]:
    return lambda argv: [*argv, *extra]


# the output flag (tests.attack_world's name) -> how the interrupted run's argv differs from the earlier run's
CASES: dict[str, Callable[[list[str]], list[str]]] = {
    "evaluation humaneval --canonical --out": _add("--limit", "1"),
    "gpt_samples --out": _set("--num-samples", "3"),
    "splits write --out": lambda argv: [*argv[:-1], "1.0 0:0.5 pairs"],
    "splits plan --json": _set("--train-iters", "3"),
    "packing --report": _set("--num-samples", "84"),
    "code_to_jsonl --output": _add("--filename-prefix"),
    "launch argv --write": _add("training.seed=7"),
    "verify shards --json": _add("--atol", "0.5"),
    "evaluation report --out": _add("--title", "Another title"),  # several files: the report and its record
}


def _sigterm_at_record_rename(monkeypatch, is_record: Callable[[Path], bool]) -> list[Path]:
    """Send SIGTERM to this process just before a record is renamed into place (once)."""
    real, sent = os.replace, []

    def replace(src, dst, *args, **kwargs):
        if is_record(Path(dst)) and not sent:
            sent.append(Path(dst))
            os.kill(os.getpid(), signal.SIGTERM)
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    return sent


def _proven(out: Path, record: Path | None = None) -> bool:
    """The record (beside ``out``) lists ``out`` and every file with it, each with the fingerprint it has now."""
    section = read_record(record or sidecar_record(out))
    if section is None or out.name not in section["files"]:
        return False
    return all((out.parent / name).is_file() and fingerprint(out.parent / name) == listed
               for name, listed in section["files"].items())


def _run(module: str, argv: list[str]) -> int:
    forget_claims()  # each run starts as a fresh process would
    return run_command(importlib.import_module(module).main, argv)


@pytest.mark.parametrize("earlier", [False, True], ids=["into-nothing", "over-an-earlier-output"])
@pytest.mark.parametrize("name", list(CASES))
def test_sigterm_at_the_record_leaves_a_whole_proven_output(name, earlier, attack_world, tmp_path, monkeypatch,
                                                            capsys):
    flag = output_flags(attack_world)[name]
    out = tmp_path / "out" / f"x{flag.suffix}"
    argv = flag.argv(out)
    before: dict[str, bytes] = {}
    if earlier:
        assert _run(flag.module, argv) == 0, capsys.readouterr().err
        before = tree(out.parent)
        assert _proven(out)
        argv = CASES[name](argv)
    capsys.readouterr()

    with monkeypatch.context() as patched:
        sent = _sigterm_at_record_rename(patched, lambda dst: dst == sidecar_record(out))
        status = _run(flag.module, argv)
    said = capsys.readouterr().err
    assert sent, f"{name}: the record was never renamed into place"
    assert status == EXIT_TERMINATED, said
    assert f"{out} is complete" in said.strip().splitlines()[-1]  # the signal acted once the renames were done
    after = tree(out.parent)
    assert not [p for p in out.parent.rglob("*") if is_leftover(p.name)]
    assert _proven(out), f"{name}: {out.name} is not proven by its record after the interrupt"
    if earlier:
        assert after[out.name] != before[out.name]  # the new output, whole (the change above makes another one)

    assert _run(flag.module, argv) == 0, capsys.readouterr().err  # a rerun replaces it
    assert _proven(out)


# the index-map caches: several maps and their key file (the record), made on the way to the command's output
CACHES: dict[str, Callable[[list[str]], list[str]]] = {
    "gpt_samples --cache-dir": _set("--split", "500,499,1"),  # other documents: the same map names, other maps
    "packing --cache-dir": _set("--seq-length", "200"),
}


def _maps_proven(cache: Path) -> bool:
    """Every map in ``cache`` is listed, with the fingerprint it has now, by a key file beside it."""
    listed: dict[str, Path] = {}  # map name -> the key file that lists it
    for key in cache.glob("*_key.json"):
        section = read_record(key)
        if section is None:
            return False
        listed.update(dict.fromkeys(section["files"], key))
    maps = {m.name for m in cache.glob("*.npy")}
    return bool(maps) and maps <= set(listed) and all(_proven(cache / name, key) for name, key in listed.items())


@pytest.mark.parametrize("earlier", [False, True], ids=["into-nothing", "over-earlier-maps"])
@pytest.mark.parametrize("name", list(CACHES))
def test_sigterm_at_the_cache_key_leaves_maps_their_key_proves(name, earlier, attack_world, tmp_path, monkeypatch,
                                                               capsys):
    flag = output_flags(attack_world)[name]
    cache = tmp_path / "maps"
    argv = flag.argv(cache)
    before: dict[str, bytes] = {}
    if earlier:
        assert _run(flag.module, argv) == 0, capsys.readouterr().err
        before = tree(cache)
        assert _maps_proven(cache)
        argv = CACHES[name](argv)
    capsys.readouterr()

    with monkeypatch.context() as patched:
        sent = _sigterm_at_record_rename(patched, lambda dst: dst.name.endswith("_key.json"))
        status = _run(flag.module, argv)
    said = capsys.readouterr().err
    assert sent, f"{name}: no key file was renamed into place"
    assert status == EXIT_TERMINATED, said
    assert not [p for p in tmp_path.rglob("*") if is_leftover(p.name)]
    assert _maps_proven(cache), f"{name}: a map in the cache is not proven by its key after the interrupt"
    if earlier:
        assert tree(cache) != before  # the new maps, whole, with their key

    assert _run(flag.module, argv) == 0, capsys.readouterr().err  # a rerun uses or rebuilds them
    assert _maps_proven(cache)
