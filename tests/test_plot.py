"""`seqattn plot` (seqattn/plot.py): learning curves drawn for one or several runs, and its refusals
(reading the curves: tests/test_curves.py)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from seqattn.cli import app

pytest.importorskip("matplotlib", reason="the plot extra is not installed: pip install 'seqattn[plot]'")

runner = CliRunner()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_metrics(run_dir: Path, lines: list[str]) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return run_dir


def test_plot_draws_several_runs_into_one_picture(trained_run, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(trained_run, other)
    for x in ("steps", "minutes", "tokens"):
        output = tmp_path / f"curves_{x}.png"
        result = runner.invoke(app, ["plot", str(trained_run), str(other), "--output", str(output), "--x", x])
        assert result.exit_code == 0, result.output
        assert output.read_bytes()[:8] == PNG_MAGIC and output.stat().st_size > 10_000
        assert result.stdout.strip().splitlines()[-1] == str(output)


def test_plot_writes_svg_by_its_suffix(trained_run, tmp_path):
    output = tmp_path / "curves.svg"
    assert runner.invoke(app, ["plot", str(trained_run), "--output", str(output)]).exit_code == 0
    assert b"<svg" in output.read_bytes()[:1000]


@pytest.mark.parametrize("case", ["not a dir", "no metrics", "empty metrics", "unknown x", "folder output",
                                  "missing output folder", "output under a file", "unknown format",
                                  "read-only folder"])
def test_bad_input_is_one_error_line_and_exit_2(case, trained_run, tmp_path):
    run_dir, output, extra = str(trained_run), tmp_path / "c.png", []
    if case == "not a dir":
        run_dir = str(tmp_path / "nowhere")
    elif case == "no metrics":
        (tmp_path / "bare").mkdir()
        run_dir = str(tmp_path / "bare")
    elif case == "empty metrics":
        run_dir = str(write_metrics(tmp_path / "empty", ['{"event": "start", "step": 0}']))
    elif case == "unknown x":
        extra = ["--x", "epochs"]
    elif case == "folder output":
        output = tmp_path
    elif case == "missing output folder":
        output = tmp_path / "no" / "c.png"
    elif case == "output under a file":
        (tmp_path / "file.txt").write_text("x")
        output = tmp_path / "file.txt" / "c.png"
    elif case == "unknown format":
        output = tmp_path / "c.docx"
    elif case == "read-only folder":
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        (tmp_path / "ro").mkdir(mode=0o500)
        output = tmp_path / "ro" / "c.png"
    result = runner.invoke(app, ["plot", run_dir, "--output", str(output), *extra])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert not (tmp_path / "c.png").exists()
