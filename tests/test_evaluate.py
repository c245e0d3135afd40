"""`seqattn evaluate` (seqattn/evaluate.py): the report it writes, and the decoder it records."""

from __future__ import annotations

import shutil

import pytest


def test_evaluate_records_the_fast_decoder(trained_run, tmp_path):
    from seqattn.evaluate import evaluate

    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    exact = evaluate(run_dir)
    fast = evaluate(run_dir, overrides=["search.shortlist=5", "search.precision=int8"])
    assert exact["decoder"] == {"shortlist": 0, "shortlist_per_source": 20, "precision": "fp32"}
    assert fast["decoder"] == {"shortlist": 5, "shortlist_per_source": 20, "precision": "int8"}
    assert fast["parameters"] == exact["parameters"]  # the trained model's, not the int8 copy's
    assert fast["ppl"] == pytest.approx(exact["ppl"], rel=0.05)
    assert abs(fast["bleu"] - exact["bleu"]) < 5
