"""The Python API (seqattn/api.py): what inference imports, and what `seqattn.load` returns."""

from __future__ import annotations

import subprocess
import sys

import pytest

import seqattn

TRAINING = ["seqattn.train", "seqattn.training_step", "seqattn.optim", "seqattn.validation",
            "seqattn.prepare", "seqattn.bench", "datasets", "tqdm"]


def test_inference_imports_nothing_of_training():
    """translate, evaluate and the API load neither the trainer nor datasets nor tqdm. (torch
    itself imports tqdm when it is installed, in torch/hub.py, so the check starts after torch.)"""
    code = ("import sys, torch; before = set(sys.modules); "
            "import seqattn.api, seqattn.translate, seqattn.evaluate; "
            f"print([m for m in {TRAINING!r} if m in set(sys.modules) - before])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_the_cli_module_imports_no_torch():
    """`seqattn --help` and argument errors need neither torch nor any command's module."""
    code = "import sys, seqattn.cli; print([m for m in ('torch', 'seqattn.api') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_load_translates_and_keeps_the_round1_import_path(trained_run):
    translator = seqattn.load(trained_run)
    result = translator.translate(["ka lo mi", ""], beam=2, nbest=2)
    assert result[0].text and result[1].text == ""
    assert result[0].attention.shape == (len(result[0].tgt_pieces), len(result[0].src_pieces))
    from seqattn.translate import Translator  # round 1's path of the API still works

    assert isinstance(translator, Translator)


def test_python_api(trained_run):
    translator = seqattn.load(trained_run)
    results = translator.translate(["ka lo mi", ""], beam=2)
    assert results[1].text == "" and results[0].text
    assert results[0].attention.shape == (len(results[0].tgt_pieces), len(results[0].src_pieces))
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    seqattn.draw_attention(ax, results[0].attention, results[0].src_pieces, results[0].tgt_pieces)
    assert [t.get_text() for t in ax.get_xticklabels()] == results[0].src_pieces
    plt.close(fig)
