"""kill -9 at any instant never leaves an unloadable checkpoint; resume loses at most save_every steps.

One kill is placed deterministically in the middle of writing last.pt (the worst instant); the
others land at random moments (startup, data preparation, training, validation or a save). The
seed is in every assertion message, so a failure can be replayed.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from reliability_support import cli_env, run_cli, start_cli, train_steps, wait_for

from seqattn.checkpoint import load_checkpoint

SAVE_EVERY = 2
CRASH_RUN = {"max_steps": 100000, "save_every": SAVE_EVERY, "valid_every": 3, "log_every": 1}

# Runs `seqattn train ...` but SIGKILLs itself half-way through writing the N-th last.pt: the
# temporary file holds half the bytes, nothing was renamed yet. Only the I/O functions that
# seqattn.checkpoint calls are wrapped; its own write logic runs unchanged.
DIE_MID_WRITE = r"""
import os, signal, sys, tempfile, types
import seqattn.files as ck
from seqattn.cli import entry

die_at = int(sys.argv[1])
targets, seen = set(), [0]

def mkstemp(*args, **kwargs):
    fd, name = tempfile.mkstemp(*args, **kwargs)
    if os.path.basename(name).startswith(".last.pt."):
        seen[0] += 1
        if seen[0] == die_at:
            targets.add(fd)
    return fd, name

class Dying:
    def __init__(self, handle):
        self.handle = handle
    def write(self, data):
        self.handle.write(data[: len(data) // 2])
        self.handle.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    def __getattr__(self, name):
        return getattr(self.handle, name)
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        return self.handle.__exit__(*exc)

def fdopen(fd, *args, **kwargs):
    handle = os.fdopen(fd, *args, **kwargs)
    return Dying(handle) if fd in targets else handle

ck.tempfile = types.SimpleNamespace(mkstemp=mkstemp)
ck.os = types.SimpleNamespace(**{**vars(os), "fdopen": fdopen})
sys.argv = ["seqattn", *sys.argv[2:]]
entry()
"""


def check_every_checkpoint_loads(run_dir: Path, note: str) -> int | None:
    """Load every checkpoint there is; return last.pt's step (None when there is none yet)."""
    folder = run_dir / "checkpoints"
    names = sorted(p.name for p in folder.glob("*.pt")) if folder.exists() else []
    assert set(names) <= {"last.pt", "best.pt"}, f"{note}: unexpected files {names}"
    for name in names:
        state = load_checkpoint(folder / name)  # raises on a torn or truncated file
        assert "model" in state and "progress" in state, f"{note}: {name}"
    if "last.pt" not in names:
        return None
    step = load_checkpoint(folder / "last.pt")["progress"]["step"]
    reached = max(train_steps(run_dir / "metrics.jsonl"), default=0)
    assert reached - step <= SAVE_EVERY, f"{note}: reached step {reached}, last.pt has {step}"
    return step


def test_sigkill_never_leaves_a_broken_checkpoint(tmp_path, tiny_config):
    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    config = tiny_config(train=CRASH_RUN)
    run_dir = tmp_path / "run"
    train = ["train", str(config), "--run-dir", str(run_dir)]

    # 1. Killed half-way through writing the second last.pt (step 4): last.pt of step 2 survives.
    died = subprocess.run([sys.executable, "-c", DIE_MID_WRITE, "2", *train], cwd=tmp_path,
                          capture_output=True, env=cli_env(), timeout=120)
    assert died.returncode == -signal.SIGKILL, died.stderr.decode()
    assert list((run_dir / "checkpoints").glob(".last.pt.*.tmp")), "the kill was not mid-write"
    assert check_every_checkpoint_loads(run_dir, "mid-write kill") == SAVE_EVERY

    # 2. Resumed runs, each killed at a random moment of its life.
    for attempt in range(2):
        note = f"random kill {attempt} (seed {seed})"
        proc = start_cli(*train, "--resume", cwd=tmp_path, log=tmp_path / f"kill{attempt}.log")
        try:
            started = time.monotonic()
            delay = rng.uniform(0.5, 3.5)
            wait_for(lambda s=started, d=delay: time.monotonic() - s >= d, timeout=delay + 1)
            assert proc.poll() is None, f"{note}: run ended early ({proc.returncode})"
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert check_every_checkpoint_loads(run_dir, f"{note} after {delay:.2f}s") is not None

    # 3. A last resume finishes normally, from where the last checkpoint was.
    step = load_checkpoint(run_dir / "checkpoints" / "last.pt")["progress"]["step"]
    done = run_cli(*train, "--resume", "--set", f"train.max_steps={step + 2}", cwd=tmp_path)
    assert done.returncode == 0, f"seed {seed}: {done.stderr.decode()}"
    assert f"resuming at step {step}" in done.stderr.decode()
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["progress"]["step"] == step + 2
    check_every_checkpoint_loads(run_dir, f"final (seed {seed})")
