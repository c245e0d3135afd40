"""Learning curves (seqattn/curves.py): series read from metrics.jsonl, run names."""

from __future__ import annotations

import json
from pathlib import Path

from seqattn.curves import read_curves, run_names


def write_metrics(run_dir: Path, lines: list[str]) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return run_dir


def event(kind: str, step: int, **fields) -> str:
    return json.dumps({"event": kind, "step": step, "epoch": 0, "elapsed": step * 6.0, **fields})


def test_series_come_from_train_and_valid_events(tmp_path):
    run_dir = write_metrics(tmp_path / "r", [
        event("train", 10, loss=5.0, tgt_tokens=1000), event("train", 20, loss=4.0, tgt_tokens=2000),
        event("valid", 20, loss=4.5, bleu=3.0, ppl=90.0), event("skipped", 21, reason="nan"),
        event("train", 30, loss=3.0, tgt_tokens=3000), event("valid", 25, loss=4.2, bleu=4.0),
        '{"event": "train", "st',  # torn by a kill mid-write
    ])
    curves = read_curves(run_dir)
    assert curves.name == "r"
    assert curves.train == {"steps": [10, 20, 30], "minutes": [1.0, 2.0, 3.0],
                            "tokens": [1000, 2000, 3000], "loss": [5.0, 4.0, 3.0]}
    assert curves.valid["bleu"] == [3.0, 4.0] and curves.valid["loss"] == [4.5, 4.2]
    assert curves.valid["tokens"] == [2000, 2500]  # valid events have no token count: interpolated
    assert curves.to_json()["valid"]["minutes"] == [2.0, 2.5]


def test_a_missing_field_is_null_in_json(tmp_path):
    run_dir = write_metrics(tmp_path / "r", [event("valid", 5, loss=2.0)])  # no bleu
    assert read_curves(run_dir).to_json()["valid"]["bleu"] == [None]


def test_run_names_are_folder_names_made_unique():
    assert run_names([Path("a/bahdanau"), Path("b/seq2seq")]) == ["bahdanau", "seq2seq"]
    assert run_names([Path("x/run"), Path("y/run")]) == ["x/run", "y/run"]
    assert run_names([Path("x/run"), Path("x/run")]) == ["x/run", "x/run#2"]
