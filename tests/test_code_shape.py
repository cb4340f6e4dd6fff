"""The shape rules of DESIGN.md section 3, enforced: one-way dependencies, no shell=True, docstrings, no utils.py."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["dataset", "training", "conversion", "runconfig", "guardrails", "evaluation"]
# package -> packages it must never import
FORBIDDEN = {
    "dataset": {"training", "conversion", "evaluation"},
    "conversion": {"training", "evaluation"},
    "runconfig": {"dataset", "training", "conversion", "evaluation"},
    "guardrails": {"dataset", "training", "conversion", "runconfig", "evaluation"},  # the bottom layer
    "training": {"evaluation"},
    "evaluation": {"training"},  # evaluation may import conversion and dataset (and runconfig) only
}


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _imported_roots(tree: ast.AST) -> set[str]:
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


ALL_MODULES = [p for pkg in PACKAGES for p in _modules(pkg)] + sorted((ROOT / "scripts").glob("*.py"))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_dependencies_point_one_way(package):
    offenders = []
    for path in _modules(package):
        bad = _imported_roots(ast.parse(path.read_text())) & FORBIDDEN[package]
        if bad:
            offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert not offenders, offenders


@pytest.mark.parametrize("path", ALL_MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_module_has_docstring_and_no_shell(path):
    tree = ast.parse(path.read_text())
    if path.name != "__init__.py" or path.read_text().strip():
        assert ast.get_docstring(tree), f"{path.relative_to(ROOT)} has no module docstring"
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "shell":
            assert not (isinstance(node.value, ast.Constant) and node.value.value), (
                f"{path.relative_to(ROOT)}:{node.value.lineno} uses shell=True"
            )


def test_no_grab_bag_modules():
    assert not [p for p in ROOT.rglob("utils.py") if ".venv" not in p.parts]


def test_shell_wrappers_are_strict():
    scripts = [*ROOT.glob("dataset/*.sh"), *ROOT.glob("conversion/*.sh"), *ROOT.glob("training/*.sh")]
    assert ROOT / "dataset" / "preprocess.sh" in scripts  # the glob finds the wrappers (the loop is not empty)
    for script in scripts:
        text = script.read_text()
        assert "set -euo pipefail" in text, f"{script.name} lacks set -euo pipefail"


ENTRY_STAGES = ["dataset", "training"]  # stages split into sub-stage subpackages; their top level is commands only
MAIN_GUARD = 'if __name__ == "__main__":\n    raise SystemExit(run_command(main))\n'


@pytest.mark.parametrize("path", [p for stage in ENTRY_STAGES for p in sorted((ROOT / stage).glob("*.py"))
                                  if p.name != "__init__.py"], ids=lambda p: str(p.relative_to(ROOT)))
def test_stage_top_level_is_thin_entry_points(path):
    """``python -m training.launch`` ... stay what users type; the code lives in the sub-stage's subpackage."""
    tree = ast.parse(path.read_text())
    docstring, *statements = tree.body
    assert isinstance(docstring, ast.Expr) and ast.get_docstring(tree), f"{path.name}: no docstring"
    assert path.read_text().endswith(MAIN_GUARD), f"{path.name}: does not end with the run_command line"
    imports = [s for s in statements if isinstance(s, ast.ImportFrom)]
    assert len(imports) == 2 == len(statements) - 1, f"{path.name}: more than the two imports and the main guard"
    assert [(i.module, [a.name for a in i.names]) for i in imports][0] == ("guardrails.command_errors", ["run_command"])
    core = imports[1]
    assert [a.name for a in core.names] == ["main"] and core.module.count(".") == 2, ast.dump(core)
    assert core.module.startswith(f"{path.parent.name}.") and core.module.endswith(f".{path.stem}"), core.module
    core_file = ROOT / (core.module.replace(".", "/") + ".py")
    assert "def main(" in core_file.read_text() and "__main__" not in core_file.read_text()


@pytest.mark.parametrize("stage", ENTRY_STAGES)
def test_commands_are_found_at_the_stage_top_level(stage):
    """A command inside a subpackage would escape tests/test_attacks_lookalikes.py, which looks at the top level."""
    hidden = [str(p.relative_to(ROOT)) for p in sorted((ROOT / stage).glob("*/**/*.py"))
              if 'if __name__ == "__main__"' in p.read_text()]
    assert not hidden, hidden
    assert not ast.parse((ROOT / stage / "__init__.py").read_text()).body[1:], "the stage's __init__ holds code"
