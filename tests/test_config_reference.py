"""The README's config reference is the one generated from seqattn.config: it cannot drift."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "config_reference.py"


@pytest.fixture(scope="module")
def reference():
    spec = importlib.util.spec_from_file_location("config_reference", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_block_matches_the_generated_table(reference):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start, end = reference.readme_block(text, "README.md")
    assert text[start:end] == reference.block_text(reference.reference_table()), (
        "README.md's config reference is out of date: "
        "run python scripts/config_reference.py --write README.md")


def test_every_config_key_is_in_the_table_with_a_meaning(reference):
    from seqattn.config import iter_keys

    rows = reference.reference_rows()
    assert [row[0] for row in rows] == [item[0] for item in iter_keys()]
    assert all(row[3] for row in rows)


def test_no_stale_meanings(reference):
    assert reference.stale_meanings() == [], (
        "MEANINGS in scripts/config_reference.py names keys that are gone or now have a comment")


def test_meaning_comes_from_the_field_comment(reference):
    rows = {row[0]: row for row in reference.reference_rows()}
    assert rows["model.hidden_size"][3].startswith("the decoder's")
    assert rows["data.name"][1:3] == ("a string or null", "`null`")
    assert rows["tokenizer.joint"][2] == "`true`"


def test_check_exits_1_on_a_stale_readme_and_write_fixes_it(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- config-reference:start -->\n| old |\n<!-- config-reference:end -->\n",
                      encoding="utf-8")
    run = [sys.executable, str(SCRIPT)]
    stale = subprocess.run([*run, "--check", str(readme)], capture_output=True, text=True)
    assert stale.returncode == 1 and "out of date" in stale.stderr
    subprocess.run([*run, "--write", str(readme)], check=True)
    assert subprocess.run([*run, "--check", str(readme)]).returncode == 0
    assert readme.read_text(encoding="utf-8").startswith("# x\n<!-- config-reference:start -->\n| key |")


def test_check_without_markers_is_an_error(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# no block\n", encoding="utf-8")
    result = subprocess.run([sys.executable, str(SCRIPT), "--check", str(readme)],
                            capture_output=True, text=True)
    assert result.returncode != 0 and "config-reference:start" in result.stderr
