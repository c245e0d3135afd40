"""The codebase's own rules that a reader relies on (shared/STYLE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "seqattn"
LONGEST = 50  # lines per function, decorators excluded


def test_no_function_in_the_package_is_longer_than_a_screen():
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > LONGEST:
                    long.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name} ({lines})")
    assert not long, long


def test_only_rundir_spells_the_run_directory_layout():
    """Run-dir names appear as path pieces in seqattn/rundir.py alone (one owner of the layout)."""
    names = ('"checkpoints"', '"config.yaml"', '"tokenizer"', '"metrics.jsonl"', '"shortlist.pt"',
             '"eval"', '"cache"', '"last.pt"', '"best.pt"')
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "rundir.py":
            continue
        text = path.read_text(encoding="utf-8")
        found += [f"{path.name}: {name}" for name in names if f"/ {name}" in text]
    assert not found, found


def test_every_module_has_its_test_file():
    """Tests mirror modules: seqattn/x.py and seqattn/models/x.py have tests/test_x.py (the models'
    factory, models/__init__.py, has tests/test_models.py)."""
    tests = Path(__file__).resolve().parent
    modules = [p.stem for p in PACKAGE.glob("*.py") if not p.stem.startswith("__")]
    modules += [p.stem for p in (PACKAGE / "models").glob("*.py") if not p.stem.startswith("__")]
    missing = [name for name in [*modules, "models"] if not (tests / f"test_{name}.py").exists()]
    assert not missing, missing
