"""The CLI end to end (typer's CliRunner), evaluate's files, translate's line contract."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

import seqattn
from seqattn.cli import app

runner = CliRunner()


def invoke(*args, input=None):
    return runner.invoke(app, [str(a) for a in args], input=input)


def test_help_lists_the_commands():
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("prepare", "train", "evaluate", "translate"):
        assert command in result.output


def test_prepare_then_train_then_evaluate(tiny_config, tmp_path):
    config = tiny_config("cli")
    run_dir = tmp_path / "run"
    result = invoke("prepare", config, "--run-dir", run_dir)
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout.strip().splitlines()[-1])
    assert stats["train_pairs"] == 600 and 0 <= stats["padding_fraction"] < 0.2
    result = invoke("train", config, "--run-dir", run_dir, "--set", "train.max_steps=10")
    assert result.exit_code == 0, result.output
    assert (run_dir / "checkpoints" / "best.pt").exists()
    result = invoke("train", config, "--run-dir", run_dir)
    assert result.exit_code == 2 and "--resume" in result.output
    result = invoke("evaluate", run_dir, "--beam", "2", "--split", "validation", "--output",
                    run_dir / "eval" / "validation.beam2.hyp.txt")  # eval/ does not exist yet
    assert result.exit_code == 0, result.output
    report = json.loads((run_dir / "eval" / "validation.json").read_text())
    for key in ("bleu", "chrf", "sentences", "seconds", "beam", "sacrebleu signatures", "ppl",
                "bleu_by_source_length"):
        assert key in report
    assert report["sentences"] == 40 and report["beam"] == 2
    hyps = (run_dir / "eval" / "validation.beam2.hyp.txt").read_text().split("\n")
    assert len(hyps) == 41 and hyps[-1] == ""


def test_default_run_dir_is_runs_slash_config_stem(tiny_config, tmp_path, monkeypatch):
    config = tiny_config("stem")
    monkeypatch.chdir(tmp_path)
    result = invoke("train", config, "--set", "train.max_steps=2")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runs" / "stem" / "checkpoints" / "last.pt").exists()


def test_user_errors_are_one_line_with_exit_2(tiny_config, tmp_path):
    result = invoke("train", tiny_config("bad"), "--set", "model.hiden_size=3",
                    "--run-dir", tmp_path / "r")
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [result.output.strip()]
    assert "unknown config key 'model.hiden_size'" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "r").exists()
    result = invoke("evaluate", tmp_path / "nowhere")
    assert result.exit_code == 2 and result.output.startswith("error: run dir not found")


def test_evaluate_other_dataset_with_set(trained_run, toy_corpus, tmp_path):
    run_dir = shutil.copytree(trained_run, tmp_path / "run")  # the shared run stays untouched
    result = invoke("evaluate", run_dir, "--beam", "1", "--set",
                    f"data.path={toy_corpus}", "--split", "test")
    assert result.exit_code == 0, result.output
    assert json.loads((run_dir / "eval" / "test.json").read_text())["sentences"] == 40


ODD_LINES = ["ka lo mi", "", "   ", "ka " * 80, "ne 😀 pu\u200bri", "e\u0301 so\u2028ta", "vu\tze"]


def test_translate_keeps_one_line_per_input_line(trained_run, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("\n".join(ODD_LINES) + "\n", encoding="utf-8")
    result = invoke("translate", trained_run, source, "--beam", "2")
    assert result.exit_code == 0, result.output
    lines = result.stdout.split("\n")
    assert len(lines) == len(ODD_LINES) + 1 and lines[-1] == ""
    assert lines[1] == "" and lines[2] == ""
    assert result.stderr.count("truncated") == 1
    stdin = invoke("translate", trained_run, "-", "--beam", "2", input="\n".join(ODD_LINES) + "\n")
    assert stdin.stdout == result.stdout


def test_translate_nbest_and_output_file(trained_run, tmp_path):
    out = tmp_path / "out.txt"
    result = invoke("translate", trained_run, "-", "--beam", "3", "--nbest", "2", "--output", out,
                    input="ka lo\nmi ne pu\n")
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in out.read_text().splitlines()]
    assert {r[0] for r in rows} == {"0", "1"} and all(len(r) == 3 for r in rows)
    first = [float(r[1]) for r in rows if r[0] == "0"]
    assert first == sorted(first, reverse=True)


def test_translate_attention_pictures(trained_run, tmp_path):
    folder = tmp_path / "att"
    result = invoke("translate", trained_run, "-", "--attention", folder, input="ka lo mi\n\nne\n")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in folder.iterdir()) == ["00001.json", "00001.png", "00003.json",
                                                        "00003.png"]
    data = json.loads((folder / "00001.json").read_text())
    matrix = np.array(data["attention"])
    assert matrix.shape == (len(data["tgt_pieces"]), len(data["src_pieces"]))
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-3)
    assert (folder / "00001.png").read_bytes()[:4] == b"\x89PNG"


def test_translate_align_on_an_rnn_model(trained_run):
    lines = ["ka lo mi", "", "ne pu"]
    result = invoke("translate", trained_run, "-", "--beam", "2", "--align",
                    input="\n".join(lines) + "\n")
    assert result.exit_code == 0, result.output
    out = result.stdout.split("\n")
    assert len(out) == len(lines) + 1 and out[1] == " ||| "
    expected = seqattn.load(trained_run).translate(lines, beam=2)
    for line, want in zip(out, expected):
        assert line == f"{want.text} ||| {want.alignment}"
    pairs = [tuple(map(int, p.split("-"))) for p in out[0].partition(" ||| ")[2].split()]
    assert pairs and all(0 <= i < len(expected[0].src_pieces) - 1 for i, _ in pairs)
    assert expected[0].attention_layers is None  # one layer, one head: nothing more to keep
    result = invoke("translate", trained_run, "-", "--align", "--attention-layer", "2",
                    input="ka\n")
    assert result.exit_code == 2 and "one attention layer with one head" in result.output


def test_translate_align_refuses_a_model_without_attention(tiny_config, tmp_path, monkeypatch):
    run_dir = tmp_path / "seq2seq"
    config = tiny_config("seq2seq", model={"kind": "seq2seq"})
    assert invoke("train", config, "--run-dir", run_dir, "--set", "train.max_steps=2").exit_code == 0

    def no_model(*_args, **_kwargs):
        raise AssertionError("the model was loaded before --align was checked")

    monkeypatch.setattr("seqattn.api.Translator.__init__", no_model)
    result = invoke("translate", run_dir, "-", "--align", input="ka lo\n")
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: a seq2seq model has no attention to align with")
    assert result.output.strip().count("\n") == 0 and result.stdout == ""


def test_translate_prompts_when_stdin_is_a_terminal(trained_run):
    """With no input file and a terminal on stdin, translate reads line by line at a prompt."""
    import os
    import pty
    import subprocess
    import sys
    import time

    controller, terminal = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(Path(seqattn.__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-m", "seqattn", "translate", str(trained_run),
                             "--beam", "1"], stdin=terminal, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    os.close(terminal)
    expected = seqattn.load(trained_run).translate(["ka lo mi"], beam=1)[0].text
    os.write(controller, b"ka lo mi\n")
    time.sleep(0.5)
    os.write(controller, b"\x04")  # Ctrl-D: end of input
    out, err = proc.communicate(timeout=120)
    os.close(controller)
    assert proc.returncode == 0, err
    assert out.decode().splitlines() == [expected]
    assert b"Ctrl-D" in err
