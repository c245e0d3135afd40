"""Disk full (ENOSPC) while saving: a one-line user error, the previous file intact, no temp litter."""

from __future__ import annotations

import errno
import os
import types

import pytest
import reliability_support  # noqa: F401  (one torch thread for the tiny models)
from conftest import tiny_config_dict
from typer.testing import CliRunner

import seqattn.files as ck
from seqattn.checkpoint import load_checkpoint, save_checkpoint
from seqattn.cli import app
from seqattn.config import config_from_dict
from seqattn.errors import UserError
from seqattn.files import atomic_write_text
from seqattn.train import Trainer, train


class FullDisk:
    """A file handle that writes part of the data, then fails the way a full disk does."""

    def __init__(self, handle):
        self.handle = handle

    def write(self, data):
        self.handle.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self.handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self.handle.__exit__(*exc)


def fill_disk(monkeypatch, after: int = 0) -> None:
    """From the (after+1)-th atomic write on, every write in seqattn.checkpoint hits ENOSPC."""
    count = [0]

    def fdopen(fd, *args, **kwargs):
        count[0] += 1
        handle = os.fdopen(fd, *args, **kwargs)
        return FullDisk(handle) if count[0] > after else handle

    monkeypatch.setattr(ck, "os", types.SimpleNamespace(**{**vars(os), "fdopen": fdopen}))


def no_temp_files(folder) -> bool:
    return not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_save_checkpoint_disk_full_keeps_previous(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint({"model": {}, "step": 1}, path)
    before = path.read_bytes()
    fill_disk(monkeypatch)
    with pytest.raises(UserError) as error:
        save_checkpoint({"model": {}, "step": 2, "pad": "x" * 100_000}, path)
    message = error.value.message()
    assert message.startswith("error: cannot write checkpoint: No space left on device")
    assert "previous checkpoint is intact" in message
    assert path.read_bytes() == before and load_checkpoint(path)["step"] == 1
    assert no_temp_files(tmp_path)


def test_atomic_write_text_disk_full_keeps_previous(tmp_path, monkeypatch):
    path = tmp_path / "out.txt"
    path.write_text("old\n")
    fill_disk(monkeypatch)
    with pytest.raises(UserError, match="No space left on device"):
        atomic_write_text(path, "new\n" * 1000)
    assert path.read_text() == "old\n" and no_temp_files(tmp_path)


def test_training_disk_full_keeps_last_good_checkpoint(tmp_path, toy_corpus, monkeypatch):
    """The disk fills up after step 5's last.pt: the run stops with a user error, last.pt = step 5."""
    config = config_from_dict(tiny_config_dict(
        toy_corpus, train={"max_steps": 20, "save_every": 5, "valid_every": 1000}))
    original = Trainer.save

    def save(self, name):
        if self.progress.step > 5:
            fill_disk(monkeypatch)
        original(self, name)

    monkeypatch.setattr(Trainer, "save", save)
    run_dir = tmp_path / "run"
    with pytest.raises(UserError, match="No space left on device"):
        train(config, run_dir, say=lambda *_: None)
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["progress"]["step"] == 5
    assert no_temp_files(run_dir / "checkpoints")


def test_metrics_disk_full_is_a_user_error(tmp_path, toy_corpus, monkeypatch):
    config = config_from_dict(tiny_config_dict(
        toy_corpus, train={"max_steps": 20, "log_every": 1, "save_every": 2, "valid_every": 1000}))
    real_open = type(tmp_path).open

    def path_open(self, mode="r", *args, **kwargs):
        if self.name == "metrics.jsonl" and "a" in mode and self.exists() \
                and len(self.read_text().splitlines()) >= 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return real_open(self, mode, *args, **kwargs)

    monkeypatch.setattr(type(tmp_path), "open", path_open)
    run_dir = tmp_path / "run"
    with pytest.raises(UserError) as error:
        train(config, run_dir, say=lambda *_: None)
    assert error.value.message().startswith("error: cannot write metrics: No space left on device")
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["progress"]["step"] == 2


def test_cli_translate_output_disk_full_one_line_exit_2(trained_run, tmp_path, monkeypatch):
    output = tmp_path / "out.txt"
    output.write_text("previous\n")
    fill_disk(monkeypatch)
    result = CliRunner().invoke(app, ["translate", str(trained_run), "-", "--output", str(output)],
                                input="ka lo\nmi\n")
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot write file: No space left")
    assert "Traceback" not in result.output
    assert output.read_text() == "previous\n" and no_temp_files(tmp_path)
