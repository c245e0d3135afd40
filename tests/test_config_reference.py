"""docs/config.md's config reference is the one generated from seqattn.config: it cannot drift."""

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


def test_docs_config_block_matches_the_generated_table(reference):
    text = (ROOT / "docs" / "config.md").read_text(encoding="utf-8")
    start, end = reference.marked_block(text, "docs/config.md")
    assert text[start:end] == reference.block_text(reference.reference_table()), (
        "docs/config.md's config reference is out of date: "
        "run python scripts/config_reference.py --write docs/config.md")


def test_write_and_check_default_to_docs_config_md(reference):
    assert reference.TARGET == ROOT / "docs" / "config.md"
    assert reference.main(["--check"]) == 0


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
    assert rows["model.rnn.hidden_size"][3].startswith("the decoder's")
    assert rows["data.name"][1:3] == ("a string or null", "`null`")
    assert rows["tokenizer.joint"][2] == "`true`"


def test_check_exits_1_on_a_stale_file_and_write_fixes_it(tmp_path):
    page = tmp_path / "config.md"
    page.write_text("# x\n<!-- config-reference:start -->\n| old |\n<!-- config-reference:end -->\n"
                    "after\n", encoding="utf-8")
    run = [sys.executable, str(SCRIPT)]
    stale = subprocess.run([*run, "--check", str(page)], capture_output=True, text=True)
    assert stale.returncode == 1 and "out of date" in stale.stderr
    subprocess.run([*run, "--write", str(page)], check=True)
    assert subprocess.run([*run, "--check", str(page)]).returncode == 0
    text = page.read_text(encoding="utf-8")
    assert text.startswith("# x\n<!-- config-reference:start -->\n| key |")
    assert text.endswith("<!-- config-reference:end -->\nafter\n")


def test_check_without_markers_is_an_error(tmp_path):
    page = tmp_path / "config.md"
    page.write_text("# no block\n", encoding="utf-8")
    result = subprocess.run([sys.executable, str(SCRIPT), "--check", str(page)],
                            capture_output=True, text=True)
    assert result.returncode != 0 and "config-reference:start" in result.stderr
