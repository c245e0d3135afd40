"""NaN/inf losses or gradients: the batch is skipped and counted; too many in a row end the run
(RunFailed, exit 1) with the last good checkpoint kept."""

from __future__ import annotations

import json
import math

import pytest
import reliability_support  # noqa: F401  (one torch thread for the tiny models)
import torch
from conftest import tiny_config_dict

from seqattn import training_step
from seqattn.checkpoint import load_checkpoint
from seqattn.config import config_from_dict
from seqattn.errors import RunFailed
from seqattn.train import Trainer, train

QUIET = {"log_every": 1, "valid_every": 1000, "save_every": 5, "max_bad_steps": 3}


def poison_loss(monkeypatch, bad) -> list[int]:
    """Make the training step's loss non-finite on the calls (1-based) for which bad(call) is true."""
    original = training_step.batch_loss
    calls = [0]

    def loss(model, batch, cfg):
        calls[0] += 1
        value = original(model, batch, cfg)
        return value * math.nan if bad(calls[0]) else value

    monkeypatch.setattr(training_step, "batch_loss", loss)
    return calls


def events(run_dir, kind: str) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [r for r in map(json.loads, lines) if r["event"] == kind]


def finite(state: dict) -> bool:
    return all(torch.isfinite(t).all() for t in state["model"].values())


def test_nan_forever_fails_after_max_bad_steps_keeping_last_good_checkpoint(
        tmp_path, toy_corpus, monkeypatch):
    poison_loss(monkeypatch, lambda call: call > 7)  # steps 1..7 fine, then NaN for ever
    config = config_from_dict(tiny_config_dict(toy_corpus, train=QUIET))
    run_dir = tmp_path / "run"
    with pytest.raises(RunFailed) as failed:
        train(config, run_dir, say=lambda *_: None)
    message = str(failed.value)
    assert "3 batches in a row" in message and "train.max_bad_steps" in message
    assert str(run_dir / "checkpoints") in message and "\n" not in message
    skipped = events(run_dir, "skipped")
    assert [r["in_a_row"] for r in skipped] == [1, 2, 3]
    assert all(r["step"] == 7 for r in skipped)  # skipped batches are not steps
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert state["progress"]["step"] == 5 and finite(state)  # the last save before the trouble


def test_occasional_nan_is_skipped_counted_and_training_goes_on(tmp_path, toy_corpus, monkeypatch):
    poison_loss(monkeypatch, lambda call: call % 3 == 0)  # every third batch, never 3 in a row
    config = config_from_dict(tiny_config_dict(toy_corpus, train={**QUIET, "max_steps": 8}))
    run_dir = tmp_path / "run"
    summary = train(config, run_dir, say=lambda *_: None)
    assert summary["step"] == 8
    skipped = events(run_dir, "skipped")
    assert len(skipped) == 3 and {r["in_a_row"] for r in skipped} == {1}  # calls 3, 6, 9 of 11
    assert [r["step"] for r in events(run_dir, "train")] == list(range(1, 9))
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert state["progress"]["skipped_steps"] == 3 and finite(state)


def test_inf_gradient_with_finite_loss_is_skipped_without_touching_weights(
        tmp_path, toy_corpus, monkeypatch):
    """A finite loss whose gradient is NaN (d/du sqrt(u) at 0): the optimizer must not step."""
    original = training_step.batch_loss
    calls = [0]

    def loss(model, batch, cfg):
        calls[0] += 1
        value = original(model, batch, cfg)
        if calls[0] == 2:
            weight = next(model.parameters())
            value = value + torch.sqrt(weight.sum() * 0.0)  # value unchanged, gradient NaN
        return value

    monkeypatch.setattr(training_step, "batch_loss", loss)
    seen = {}
    original_step = Trainer._train_step

    def step(self, batch):
        before = [p.detach().clone() for p in self.model.parameters()]
        result = original_step(self, batch)
        if result is None:
            after = list(self.model.parameters())
            seen["unchanged"] = all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
        return result

    monkeypatch.setattr(Trainer, "_train_step", step)
    config = config_from_dict(tiny_config_dict(toy_corpus, train={**QUIET, "max_steps": 3}))
    summary = train(config, tmp_path / "run", say=lambda *_: None)
    assert summary["step"] == 3
    assert seen == {"unchanged": True}
    assert len(events(tmp_path / "run", "skipped")) == 1


def test_optimizer_overflow_is_a_failed_run_not_a_crash(tmp_path, toy_corpus):
    """lr so large that Adam's step size overflows float32: RunFailed naming train.lr."""
    config = config_from_dict(tiny_config_dict(toy_corpus, train={**QUIET, "lr": 1e38}))
    with pytest.raises(RunFailed, match="train.lr"):
        train(config, tmp_path / "run", say=lambda *_: None)
