"""Checkpoints: today's format round-trips, and round 1's runs still load and translate the same."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest
import torch

from seqattn.api import Translator
from seqattn.checkpoint import CHECKPOINT_FORMAT, ROUND1_FORMAT, load_checkpoint, upgrade_weights
from seqattn.rundir import RunDir

ROUND1 = Path(__file__).parent / "fixtures" / "round1"


@pytest.mark.parametrize("kind", ["seq2seq", "bahdanau", "luong"])
def test_a_round1_run_translates_as_it_did(kind, tmp_path):
    """Runs written by the round-1 code (flat config keys, checkpoint format 1, the RNN parts at
    the model's top level) give the very translations that code gave."""
    run = tmp_path / kind
    shutil.copytree(ROUND1 / kind, run)
    expected = json.loads((run / "expected.json").read_text(encoding="utf-8"))
    assert load_checkpoint(RunDir(run).best)["format"] == ROUND1_FORMAT
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        translator = Translator(run)
    assert sum("deprecated" in str(w.message) for w in caught) == 1  # the run's config.yaml
    assert [r.text for r in translator.translate(expected["inputs"], beam=1)] == expected["greedy"]
    beam = translator.translate(expected["inputs"], beam=3, nbest=2)
    assert [r.text for r in beam] == expected["beam3"]
    assert [[text for _, text in r.nbest] for r in beam] == expected["beam3_nbest"]


def test_round1_weights_are_moved_under_the_decoder():
    state = {"format": ROUND1_FORMAT, "model": {
        "tgt_embed.weight": torch.ones(2), "rnn.token_proj.weight": torch.zeros(1),
        "bridge_hidden.bias": torch.zeros(1), "encoder.rnn.weight_ih_l0": torch.zeros(1),
        "generator.proj.bias": torch.zeros(1)}}
    upgraded = upgrade_weights(state)
    assert set(upgraded) == {"tgt_embed.weight", "decoder.embedding.weight", "decoder.rnn.token_proj.weight",
                             "decoder.bridge.hidden.bias", "encoder.rnn.weight_ih_l0",
                             "generator.proj.bias"}
    assert upgrade_weights({"format": CHECKPOINT_FORMAT, "model": state["model"]}) is state["model"]


def test_todays_checkpoints_are_format_2_with_nested_config(trained_run):
    state = load_checkpoint(RunDir(trained_run).last)
    assert state["format"] == CHECKPOINT_FORMAT
    assert "rnn" in state["config"]["model"] and "hidden_size" not in state["config"]["model"]
    assert any(key.startswith("decoder.") for key in state["model"])


def test_checkpoints_are_plain_data_and_round_trip(trained_run):
    from seqattn.api import load_run_config
    from seqattn.models import build_model

    for name in ("last.pt", "best.pt"):
        state = torch.load(trained_run / "checkpoints" / name, weights_only=True)
        config = load_run_config(trained_run)
        model = build_model(config.model, state["vocab"]["src"], state["vocab"]["tgt"])
        missing, unexpected = model.load_state_dict(state["model"], strict=True)
        assert not missing and not unexpected
        for key, value in model.state_dict().items():
            assert torch.equal(value, state["model"][key])
    last = torch.load(trained_run / "checkpoints/last.pt", weights_only=True)
    assert {"optimizer", "schedule", "rng", "progress"} <= set(last)
