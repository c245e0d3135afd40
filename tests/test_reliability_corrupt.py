"""Corrupt or foreign files: truncated checkpoints, a vocabulary or model config that does not match,
a missing or damaged tokenizer, no checkpoints. Each is a one-line UserError (exit 2 in the CLI,
see test_reliability_cli.py), and a refused `train --resume` changes nothing in the run."""

from __future__ import annotations

import shutil

import pytest
import torch
import yaml
from reliability_support import copy_run, edit_run_config, rewrite_checkpoint, truncate, user_error

from seqattn.api import Translator
from seqattn.checkpoint import load_checkpoint
from seqattn.config import config_from_dict
from seqattn.train import train


@pytest.fixture
def run(trained_run, tmp_path):
    """A private copy of the shared trained run."""
    return copy_run(trained_run, tmp_path / "run")


def run_config(run_dir):
    return config_from_dict(yaml.safe_load((run_dir / "config.yaml").read_text()))


@pytest.mark.parametrize("keep", [0, 1, 64, 1000, None, -1], ids=lambda k: f"keep{k}")
def test_truncated_checkpoint(run, keep):
    path = run / "checkpoints" / "best.pt"
    size = path.stat().st_size
    truncate(path, size - 1 if keep == -1 else keep)
    message = user_error(load_checkpoint, path)
    assert str(path) in message
    assert "corrupt or truncated" in message or "refused" in message
    assert str(path) in user_error(Translator, run)


def test_garbage_and_empty_dict_checkpoints(run):
    path = run / "checkpoints" / "best.pt"
    path.write_bytes(b"not a checkpoint at all\n" * 100)
    user_error(load_checkpoint, path)
    torch.save({"weights": torch.zeros(3)}, path)
    assert "not a seqattn checkpoint" in user_error(load_checkpoint, path)
    torch.save([1, 2, 3], path)
    assert "not a seqattn checkpoint" in user_error(load_checkpoint, path)


def test_checkpoint_from_another_vocabulary(run):
    rewrite_checkpoint(run / "checkpoints" / "best.pt",
                       lambda s: s["vocab"].update(tokenizer="0000000000000000"))
    assert "vocabulary does not match" in user_error(Translator, run)
    rewrite_checkpoint(run / "checkpoints" / "last.pt", lambda s: s["vocab"].update(src=999))
    assert "vocabulary does not match" in user_error(Translator, run, checkpoint="last.pt")


def test_checkpoint_from_another_model_config(run):
    edit_run_config(run, "model", rnn={"hidden_size": 64})
    assert "model config differs" in user_error(Translator, run)


@pytest.mark.parametrize("damage", ["no-config", "no-vocab", "vocab-not-dict", "model-list",
                                    "missing-weights", "wrong-shapes", "old-format"])
def test_checkpoint_with_damaged_entries(run, damage):
    def mutate(state):
        if damage == "no-config":
            del state["config"]
        elif damage == "no-vocab":
            del state["vocab"]
        elif damage == "vocab-not-dict":
            state["vocab"] = "x"
        elif damage == "model-list":
            state["model"] = [1, 2]
        elif damage == "missing-weights":
            state["model"].pop(next(iter(state["model"])))
        elif damage == "wrong-shapes":
            state["model"] = {k: torch.zeros(2) for k in state["model"]}
        elif damage == "old-format":
            state["format"] = "seqattn-checkpoint-0"

    rewrite_checkpoint(run / "checkpoints" / "best.pt", mutate)
    assert "best.pt" in user_error(Translator, run)


def test_missing_or_damaged_tokenizer(run):
    shutil.rmtree(run / "tokenizer")
    assert "tokenizer missing" in user_error(Translator, run)
    (run / "tokenizer").mkdir()
    meta = run / "tokenizer" / "tokenizer.json"
    for text in ["{not json", "[]", '{"files": []}', '{"files": ["src.model"]}',
                 '{"files": ["missing.model"], "fingerprint": "x"}']:
        meta.write_text(text)
        assert "tokenizer unreadable" in user_error(Translator, run), text


def test_truncated_tokenizer_model(run):
    truncate(run / "tokenizer" / "src.model")
    assert "tokenizer unreadable" in user_error(Translator, run)


def test_run_dir_without_checkpoints(run, tmp_path):
    shutil.rmtree(run / "checkpoints")
    assert "no checkpoints" in user_error(Translator, run)
    assert "checkpoint not found" in user_error(Translator, run, checkpoint="best.pt")
    assert "run dir not found" in user_error(Translator, tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    assert "no config.yaml" in user_error(Translator, tmp_path / "empty")


# -- train --resume: refused, and the run left as it was -----------------------------------------


def snapshot(run_dir):
    return {p.relative_to(run_dir): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


def test_resume_from_truncated_last_checkpoint(run):
    truncate(run / "checkpoints" / "last.pt")
    before = snapshot(run)
    message = user_error(train, run_config(run), run, resume=True, say=lambda *_: None)
    assert "last.pt" in message and "corrupt or truncated" in message
    assert snapshot(run) == before


def test_resume_with_missing_tokenizer_does_not_train_a_new_one(run):
    shutil.rmtree(run / "tokenizer")
    before = snapshot(run)
    message = user_error(train, run_config(run), run, resume=True, say=lambda *_: None)
    assert "tokenizer missing" in message
    assert not (run / "tokenizer").exists() and snapshot(run) == before


def test_resume_with_another_model_config_keeps_the_runs_config(run):
    config = run_config(run)
    other = config_from_dict({**yaml.safe_load((run / "config.yaml").read_text()),
                              "model": {"kind": config.model.kind, "rnn": {"hidden_size": 64}}})
    before = snapshot(run)
    assert "model config differs" in user_error(train, other, run, resume=True, say=lambda *_: None)
    assert snapshot(run) == before
    Translator(run)  # still usable


def test_resume_without_checkpoints(run):
    shutil.rmtree(run / "checkpoints")
    message = user_error(train, run_config(run), run, resume=True, say=lambda *_: None)
    assert "nothing to resume" in message
