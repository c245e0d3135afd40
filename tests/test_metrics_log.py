"""RUN_DIR/metrics.jsonl (seqattn/metrics_log.py): appended events, forgotten past a checkpoint."""

from __future__ import annotations

import json

import pytest

from seqattn.errors import UserError
from seqattn.metrics_log import MetricsLog


def steps(path):
    return [json.loads(line)["step"] for line in path.read_text().splitlines()]


def test_events_are_appended_one_json_object_per_line(tmp_path):
    log = MetricsLog(tmp_path / "metrics.jsonl")
    for step in (1, 2, 3):
        log.write({"event": "train", "step": step, "loss": 1.0 / step})
    assert steps(log.path) == [1, 2, 3]
    assert json.loads(log.path.read_text().splitlines()[1]) == {"event": "train", "step": 2, "loss": 0.5}


def test_forget_after_drops_later_events_and_torn_lines(tmp_path):
    log = MetricsLog(tmp_path / "metrics.jsonl")
    log.write({"event": "start", "step": 0})
    for step in (1, 2, 3, 4):
        log.write({"event": "train", "step": step})
    with log.path.open("a") as handle:
        handle.write('{"event": "train", "st')  # torn by a kill mid-write
    log.forget_after(2)
    assert steps(log.path) == [0, 1, 2]
    log.write({"event": "train", "step": 3})  # the resumed run logs step 3 once
    assert steps(log.path) == [0, 1, 2, 3]


def test_forget_after_without_a_log_does_nothing(tmp_path):
    MetricsLog(tmp_path / "metrics.jsonl").forget_after(5)
    assert not (tmp_path / "metrics.jsonl").exists()


def test_a_write_that_fails_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="cannot write metrics"):
        MetricsLog(tmp_path / "missing" / "metrics.jsonl").write({"event": "train", "step": 1})
