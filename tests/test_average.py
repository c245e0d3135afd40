"""train.keep_last keeps step checkpoints; `seqattn average` writes their mean, usable everywhere."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import tiny_config_dict
from typer.testing import CliRunner

from seqattn.average import average_run
from seqattn.checkpoint import load_checkpoint
from seqattn.cli import app
from seqattn.config import config_from_dict
from seqattn.errors import UserError
from seqattn.rundir import RunDir
from seqattn.train import train

runner = CliRunner()


@pytest.fixture
def kept_run(toy_corpus, tmp_path):
    config = config_from_dict(tiny_config_dict(
        toy_corpus, train={"max_steps": 23, "save_every": 5, "keep_last": 3, "valid_every": 1000}))
    run_dir = tmp_path / "run"
    train(config, run_dir, say=lambda *_: None)
    return run_dir


def test_keep_last_keeps_the_newest_saves_without_training_state(kept_run):
    kept = RunDir(kept_run).step_checkpoints()
    # saves at 5, 10, 15, 20 and at the end (23): the last three stay
    assert [p.name for p in kept] == ["step0000015.pt", "step0000020.pt", "step0000023.pt"]
    state = load_checkpoint(kept[-1])
    assert "optimizer" not in state and state["progress"]["step"] == 23
    last = load_checkpoint(kept_run / "checkpoints" / "last.pt")
    for key, tensor in last["model"].items():
        assert torch.equal(tensor, state["model"][key])


def test_average_is_the_elementwise_mean(kept_run):
    target, chosen = average_run(kept_run, 3)
    assert target == kept_run / "checkpoints" / "averaged.pt" and len(chosen) == 3
    states = [load_checkpoint(p)["model"] for p in chosen]
    averaged = load_checkpoint(target)
    assert averaged["averaged_from"] == [p.name for p in chosen]
    assert "optimizer" not in averaged
    moved = 0
    for key, tensor in averaged["model"].items():
        expected = sum(s[key].double() for s in states) / 3
        assert tensor.dtype == states[-1][key].dtype
        torch.testing.assert_close(tensor.double(), expected, rtol=1e-6, atol=1e-7)
        moved += not torch.equal(tensor, states[-1][key])
    assert moved > 0  # the weights moved between saves, so the mean is a new model


def test_averaged_checkpoint_evaluates_and_translates(kept_run):
    result = runner.invoke(app, ["average", str(kept_run), "--last", "2"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith("averaged.pt")
    result = runner.invoke(app, ["evaluate", str(kept_run), "--checkpoint", "averaged.pt",
                                 "--beam", "2"])
    assert result.exit_code == 0, result.output
    report = json.loads((kept_run / "eval" / "test.json").read_text())
    assert report["checkpoint"].endswith("averaged.pt") and report["sentences"] == 40


@pytest.mark.parametrize("last, output, needle", [
    (1, "averaged.pt", "at least 2"),
    (4, "averaged.pt", "kept 3 step checkpoints"),
    (2, "last.pt", "would replace"),
    (2, "best.pt", "would replace"),
    (2, "step0000099.pt", "would replace"),
])
def test_average_refuses_with_one_line(kept_run, last, output, needle):
    before = {p.name: p.read_bytes() for p in (kept_run / "checkpoints").iterdir()}
    with pytest.raises(UserError, match=needle):
        average_run(kept_run, last, output)
    result = runner.invoke(app, ["average", str(kept_run), "--last", str(last),
                                 "--output", output])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in (kept_run / "checkpoints").iterdir()} == before


def test_runs_without_keep_last_keep_no_step_files(trained_run):
    assert RunDir(trained_run).step_checkpoints() == []
    with pytest.raises(UserError, match="keep_last"):
        average_run(trained_run, 2)
