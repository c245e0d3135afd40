"""Training (seqattn/train.py): learning the toy task, exact resume, metrics, run-dir rules, stops,
the schedule measured against the step limit, scheduled sampling."""

from __future__ import annotations

import json

import pytest
import torch

from seqattn.config import config_from_dict
from seqattn.errors import UserError
from seqattn.train import train
from tests.conftest import tiny_config_dict


def events(run_dir, kind):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["event"] == kind]


def quiet(*_):
    pass


@pytest.mark.parametrize("kind", ["seq2seq", "bahdanau", "luong", "transformer"])
def test_each_kind_learns_the_toy_task(toy_corpus, tmp_path, kind):
    """The whole pipeline on the toy reversal task. Attention models solve it in 150 steps; the
    fixed-vector model only starts to (its loss falls, its BLEU stays low): what attention buys."""
    transformer = {"encoder_layers": 2, "decoder_layers": 2, "heads": 4, "ff_size": 64,
                   "attention_dropout": 0.0}
    config = config_from_dict(tiny_config_dict(
        toy_corpus, model={"kind": kind, "rnn": {"hidden_size": 64}, "embedding_size": 32,
                           "transformer": transformer},
        train={"max_steps": 150, "valid_every": 150, "lr": 0.01}))
    summary = train(config, tmp_path / kind, say=quiet)
    valid = events(tmp_path / kind, "valid")
    assert summary["step"] == 150 and valid[-1]["step"] == 150
    first = events(tmp_path / kind, "train")[0]["loss"]
    assert valid[-1]["loss"] < first * (0.6 if kind == "seq2seq" else 0.5)
    if kind != "seq2seq":
        assert valid[-1]["bleu"] > 50, valid[-1]


def test_resume_continues_exactly(toy_corpus, tmp_path):
    def config(max_steps):
        return config_from_dict(tiny_config_dict(
            toy_corpus, model={"dropout": 0.2},
            train={"max_steps": max_steps, "log_every": 1, "valid_every": 6, "save_every": 6}))

    train(config(18), tmp_path / "straight", say=quiet)
    train(config(12), tmp_path / "split", say=quiet)
    train(config(18), tmp_path / "split", resume=True, say=quiet)
    straight = {e["step"]: e["loss"] for e in events(tmp_path / "straight", "train")}
    resumed = {e["step"]: e["loss"] for e in events(tmp_path / "split", "train")}
    assert sorted(resumed) == list(range(1, 19))
    for step in range(13, 19):
        assert resumed[step] == pytest.approx(straight[step], rel=1e-6), step
    last_straight = torch.load(tmp_path / "straight/checkpoints/last.pt", weights_only=True)
    last_resumed = torch.load(tmp_path / "split/checkpoints/last.pt", weights_only=True)
    for key, value in last_straight["model"].items():
        torch.testing.assert_close(last_resumed["model"][key], value)


def test_resume_from_an_older_checkpoint_logs_each_step_once(toy_corpus, tmp_path):
    """As after a kill: metrics logged past the checkpoint are dropped, then logged again."""
    def config(max_steps):
        return config_from_dict(tiny_config_dict(
            toy_corpus, train={"max_steps": max_steps, "log_every": 1, "save_every": 4}))

    run = tmp_path / "run"
    train(config(8), run, say=quiet)
    older = (run / "checkpoints" / "last.pt").read_bytes()  # step 8
    train(config(12), run, resume=True, say=quiet)
    (run / "checkpoints" / "last.pt").write_bytes(older)
    (run / "checkpoints" / ".last.pt.leftover.tmp").write_bytes(b"torn")
    train(config(12), run, resume=True, say=quiet)
    assert [e["step"] for e in events(run, "train")] == list(range(1, 13))
    assert not list((run / "checkpoints").glob(".*.tmp"))


def test_metrics_and_run_dir_layout(trained_run):
    for event in events(trained_run, "train"):
        assert {"event", "step", "epoch", "elapsed", "loss", "lr", "tgt_tokens",
                "tokens_per_second"} <= set(event)
    for event in events(trained_run, "valid"):
        assert {"event", "step", "epoch", "elapsed", "loss", "ppl", "bleu", "chrf"} <= set(event)
    assert (trained_run / "config.yaml").exists()
    assert list((trained_run / "valid").glob("step*.hyp.txt"))
    assert (trained_run / "tokenizer" / "tokenizer.json").exists()


def test_run_dir_rules(toy_corpus, tmp_path):
    config = config_from_dict(tiny_config_dict(toy_corpus, train={"max_steps": 2}))
    train(config, tmp_path / "run", say=quiet)
    with pytest.raises(UserError, match="--resume .* or --overwrite"):
        train(config, tmp_path / "run", say=quiet)
    train(config, tmp_path / "run", overwrite=True, say=quiet)
    assert len(events(tmp_path / "run", "valid")) == 1  # the old metrics are gone
    with pytest.raises(UserError, match="nothing to resume"):
        train(config, tmp_path / "fresh", resume=True, say=quiet)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UserError, match="run dir is a file"):
        train(config, tmp_path / "afile", say=quiet)


def test_stops_at_max_epochs_and_patience(toy_corpus, tmp_path):
    config = config_from_dict(tiny_config_dict(
        toy_corpus, train={"max_steps": None, "max_epochs": 2, "valid_every": 1000}))
    summary = train(config, tmp_path / "epochs", say=quiet)
    assert "max_epochs" in summary["stop"]
    config = config_from_dict(tiny_config_dict(
        toy_corpus, train={"max_steps": 200, "valid_every": 2, "patience": 1, "lr": 1e-6,
                           "best_metric": "bleu"}))
    summary = train(config, tmp_path / "patience", say=quiet)
    assert "patience" in summary["stop"] and summary["step"] < 200


def test_linear_schedule_ends_with_the_step_limit(toy_corpus, tmp_path):
    """The decay is measured against the limit that stops the run (here max_steps)."""
    config = config_from_dict(tiny_config_dict(
        toy_corpus, train={"max_steps": 10, "max_epochs": 1000, "log_every": 1, "lr": 0.01,
                           "min_lr": 0.0, "schedule": "linear"}))
    train(config, tmp_path / "linear", say=quiet)
    rates = {e["step"]: e["lr"] for e in events(tmp_path / "linear", "train")}
    assert sorted(rates) == list(range(1, 11))
    for step, rate in rates.items():
        assert rate == pytest.approx(0.01 * (1 - (step - 1) / 10), rel=1e-3), step


def test_scheduled_sampling_trains(toy_corpus, tmp_path):
    config = config_from_dict(tiny_config_dict(toy_corpus, train={"teacher_forcing": 0.5,
                                                                  "max_steps": 6}))
    assert train(config, tmp_path / "ss", say=quiet)["step"] == 6
