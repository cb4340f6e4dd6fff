"""docstring_pairs: exact pairs from a small source tree, skip reasons, seeding, and a check against real stdlib code."""
import ast
import json
import sysconfig
import textwrap
from collections import Counter
from pathlib import Path

from dataset.builders.docstring_pairs import DocstringPairSettings, build_docstring_pairs, extract_pairs, main

MODULE = '''\
import os


def add(a, b):
    """Add two numbers."""
    return a + b


class Box:
    @property
    def size(self):
        """How big.

        Several lines.
        """
        # a comment is part of the body
        return 3

    def bare(self):
        return 1

    def only_doc(self):
        """Nothing else."""


def same_line(): "doc"; return 1


def outer():
    """Outer."""
    def inner():
        """Inner."""
        return 2
    return inner
'''
EXPECTED = [
    ("add", 'def add(a, b):\n    """Add two numbers."""\n', "    return a + b\n"),
    ("size", '    def size(self):\n        """How big.\n\n        Several lines.\n        """\n',
     "        # a comment is part of the body\n        return 3\n"),
    ("outer", 'def outer():\n    """Outer."""\n',
     '    def inner():\n        """Inner."""\n        return 2\n    return inner\n'),
    ("inner", '    def inner():\n        """Inner."""\n', "        return 2\n"),
]


def test_extract_pairs_cuts_signature_docstring_and_body_exactly():
    skipped = Counter()
    pairs = extract_pairs(MODULE, skipped)
    assert [(p.name, p.prompt, p.body) for p in pairs] == EXPECTED
    assert skipped == {"no_docstring": 1, "docstring_only": 1, "body_on_docstring_line": 1}
    crlf = extract_pairs(MODULE.replace("\n", "\r\n"), Counter())
    assert [(p.name, p.prompt, p.body) for p in crlf] == EXPECTED


def _tree(root: Path) -> None:
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "mod.py").write_text(MODULE)
    (root / "copy").mkdir()
    (root / "copy" / "mod.py").write_text(MODULE)  # every pair repeats: duplicates
    (root / "pkg" / "broken.py").write_text("def (:\n")
    (root / "pkg" / "bad_bytes.py").write_bytes(b"x = '\xff'\n")
    (root / "pkg" / "latin.py").write_bytes(
        b'# -*- coding: latin-1 -*-\ndef cafe():\n    """Caf\xe9."""\n    return "\xe9"\n')
    (root / "pkg" / "special.py").write_text('def s():\n    """Emit <|endoftext|>."""\n    return 0\n')
    (root / "pkg" / "long.py").write_text('def big():\n    """Big."""\n' + "    x = 1\n" * 100)
    (root / "pkg" / "tests").mkdir()
    (root / "pkg" / "tests" / "test_x.py").write_text('def t():\n    """Never walked."""\n    return 1\n')


def test_build_skips_and_counts_bad_files_and_pairs(tmp_path):
    _tree(tmp_path)
    result = build_docstring_pairs([tmp_path], DocstringPairSettings(max_record_chars=500, filename_probability=1.0))
    got = {(r.inputs, r.targets) for r in result.records}
    want = {(f"<filename>{n}.py<commit_before>{p}", f"{b}<|endoftext|>") for n, p, b in EXPECTED}
    want.add(('<filename>cafe.py<commit_before>def cafe():\n    """Café."""\n', '    return "é"\n<|endoftext|>'))
    assert got == want
    assert result.skipped == {
        "no_docstring": 2, "docstring_only": 2, "body_on_docstring_line": 2, "duplicate": 4,
        "unparsable_file": 1, "undecodable_file": 1, "special_token_in_text": 1, "too_long": 1,
    }
    assert result.files == 7


def test_seeded_selection_coin_and_cli_output(tmp_path):
    _tree(tmp_path / "src")
    out = tmp_path / "out" / "pairs.jsonl"
    args = ["--roots", str(tmp_path / "src"), "--output", str(out), "--max-records", "3", "--seed", "5"]
    assert main(args) == 0
    first = out.read_bytes()
    assert main(args) == 0
    assert out.read_bytes() == first
    records = [json.loads(line) for line in first.decode("utf-8").split("\n") if line]
    assert len(records) == 3 and all(list(r) == ["inputs", "targets"] for r in records)
    manifest = json.loads((tmp_path / "out" / "pairs.jsonl.manifest.json").read_text())
    assert manifest["records"] == 3 and manifest["skipped"]["not_selected"] == 3
    none = build_docstring_pairs([tmp_path / "src"], DocstringPairSettings(filename_probability=0.0))
    # all 6 usable pairs (the 3 written + 3 not selected): EXPECTED, cafe, and big under the default length limit
    assert len(none.records) == 6 and all(r.inputs.startswith("<commit_before>") for r in none.records)
    assert main(["--roots", str(tmp_path / "missing"), "--output", str(tmp_path / "x.jsonl")]) == 2


def test_stdlib_pairs_reassemble_into_the_original_functions():
    """Independent check on real code: prompt + body is the function's source, and its docstring is the same."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    roots = [stdlib / "json", stdlib / "textwrap.py", stdlib / "fractions.py"]
    result = build_docstring_pairs(roots, DocstringPairSettings(filename_probability=0.0, max_record_chars=10**6))
    sources = "\n".join(p.read_text(encoding="utf-8") for r in roots for p in ([r] if r.is_file() else r.rglob("*.py")))
    assert len(result.records) > 30
    for record in result.records:
        prompt = record.inputs.removeprefix("<commit_before>")
        body = record.targets.removesuffix("<|endoftext|>")
        assert prompt + body in sources
        function = ast.parse(textwrap.dedent(prompt + body)).body[0]
        assert isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
        assert ast.get_docstring(function) == ast.get_docstring(ast.parse(textwrap.dedent(prompt + "    pass\n")).body[0])


def test_no_python_files_or_no_usable_pair_is_an_error_and_writes_nothing(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "out" / "pairs.jsonl"
    assert main(["--roots", str(tmp_path / "empty"), "--output", str(out)]) == 2
    assert f"no .py files under {tmp_path / 'empty'}" in capsys.readouterr().err
    (tmp_path / "bare").mkdir()
    (tmp_path / "bare" / "m.py").write_text("def f():\n    return 1\n")  # no docstring: no pair
    assert main(["--roots", str(tmp_path / "bare"), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no usable docstring pair in 1 .py file(s)" in err and "no_docstring=1" in err
    assert not (tmp_path / "out").exists()
