"""SIGINT/SIGTERM during `train`: last.pt saved, how to resume printed, exit 130; --resume goes on."""

from __future__ import annotations

import os
import re
import signal

import pytest
from conftest import tiny_config_dict
from reliability_support import run_cli, start_cli, train_steps, wait_for

from seqattn.checkpoint import load_checkpoint
from seqattn.config import config_from_dict
from seqattn.errors import Interrupted
from seqattn.train import Trainer, train

# save_every is huge: a last.pt on disk after the signal can only be the interrupt's own save.
LONG_RUN = {"max_steps": 100000, "save_every": 100000, "valid_every": 100000, "log_every": 1}


def test_sigint_saves_last_checkpoint_and_resume_continues(tmp_path, tiny_config):
    """End to end: a real `seqattn train` process, a real SIGINT, then `--resume`."""
    sig = signal.SIGINT
    config = tiny_config(train=LONG_RUN)
    run_dir = tmp_path / "run"
    log = tmp_path / "train.log"
    proc = start_cli("train", config, "--run-dir", run_dir, cwd=tmp_path, log=log)
    try:
        wait_for(lambda: len(train_steps(run_dir / "metrics.jsonl")) >= 3, timeout=90, proc=proc,
                 what="three training steps")
        seen = max(train_steps(run_dir / "metrics.jsonl"))
        proc.send_signal(sig)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = log.read_text(encoding="utf-8", errors="replace")
    assert code == 130, output
    assert "Traceback" not in output, output
    last_line = [line for line in output.splitlines() if line.strip()][-1]
    assert f"interrupted by {sig.name}" in last_line, output
    assert "--resume" in last_line and str(run_dir) in last_line, output
    step = int(re.search(r"at step (\d+)", last_line).group(1))
    assert step >= seen

    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert state["progress"]["step"] == step
    assert "optimizer" in state  # a full checkpoint: resumable

    target = step + 3
    resumed = run_cli("train", config, "--run-dir", run_dir, "--resume",
                      "--set", f"train.max_steps={target}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr.decode()
    assert f"resuming at step {step}" in resumed.stderr.decode()
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["progress"]["step"] == target
    # It went on from `step`, it did not start again: the new train events are step+1..target.
    steps = train_steps(run_dir / "metrics.jsonl")
    assert steps[-3:] == [step + 1, step + 2, target]
    assert steps.count(1) == 1


def signal_during_steps(monkeypatch, sig, at_calls):
    """Deliver `sig` to this process inside the given (1-based) training steps."""
    original = Trainer._train_step
    calls = [0]

    def step(self, batch):
        calls[0] += 1
        if calls[0] in at_calls:
            os.kill(os.getpid(), sig)
        return original(self, batch)

    monkeypatch.setattr(Trainer, "_train_step", step)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_in_process_finishes_the_step_and_saves(tmp_path, toy_corpus, monkeypatch, sig):
    signal_during_steps(monkeypatch, sig, {3})
    config = config_from_dict(tiny_config_dict(toy_corpus, train=LONG_RUN))
    run_dir = tmp_path / "run"
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with pytest.raises(Interrupted) as stopped:
        train(config, run_dir, say=lambda *_: None)
    assert stopped.value.exit_code == 130
    message = str(stopped.value)
    assert f"interrupted by {sig.name} at step 3" in message and "--resume" in message
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["progress"]["step"] == 3
    assert {s: signal.getsignal(s) for s in before} == before  # handlers given back


def test_second_signal_stops_at_once_keeping_the_last_checkpoint(tmp_path, toy_corpus, monkeypatch):
    """Two Ctrl-C in one step: stop now, without a new save (last.pt stays from step 2)."""
    signal_during_steps(monkeypatch, signal.SIGINT, {3})
    original = Trainer._train_step

    def twice(self, batch):
        result = original(self, batch)
        if self.stop_signal is not None:
            os.kill(os.getpid(), signal.SIGINT)
        return result

    monkeypatch.setattr(Trainer, "_train_step", twice)
    config = config_from_dict(tiny_config_dict(toy_corpus, train={**LONG_RUN, "save_every": 2}))
    run_dir = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(config, run_dir, say=lambda *_: None)
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["progress"]["step"] == 2
