"""`seqattn evaluate` (seqattn/evaluate.py): the report it writes, and the decoder it records."""

from __future__ import annotations

import json
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


def test_evaluate_writes_the_report_with_the_contracts_keys(trained_run, tmp_path):
    from seqattn.evaluate import evaluate
    from seqattn.rundir import RunDir

    run = RunDir(tmp_path / "run")
    shutil.copytree(trained_run, run.root)
    report = evaluate(run.root, beam=2)
    written = json.loads(run.eval_report("test").read_text())
    assert {"bleu", "chrf", "sentences", "seconds", "beam", "sacrebleu signatures"} <= set(written)
    assert written["split"] == "test" and written["beam"] == 2 and written["sentences"] == 40
    assert set(written["sacrebleu signatures"]) == {"bleu", "chrf"}
    assert written["parameters"] > 0 and written["model"] == "bahdanau"
    assert sum(b["sentences"] for b in written["bleu_by_source_length"]) == 40
    hypotheses = run.eval_hypotheses("test").read_text().splitlines()
    assert len(hypotheses) == 40
    assert report["report_file"] == str(run.eval_report("test"))
    assert {k: v for k, v in report.items() if not k.endswith("_file")} == written
    validation = evaluate(run.root, split="validation", beam=1)
    assert validation["split"] == "validation" and run.eval_report("validation").exists()
