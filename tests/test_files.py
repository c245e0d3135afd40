"""Files never half-written, and outputs checked before any work (seqattn/files.py)."""

from __future__ import annotations

import os

import pytest

from seqattn import files
from seqattn.errors import UserError
from seqattn.files import atomic_write_text, check_can_create_dir, check_writable_file


def test_atomic_write_replaces_the_whole_file_and_creates_its_folder(tmp_path):
    path = tmp_path / "new" / "report.json"
    atomic_write_text(path, "first version, rather long\n")
    atomic_write_text(path, "second\n")
    assert path.read_text() == "second\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["report.json"]  # no temporary left


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_failed_write_leaves_the_old_file_whole(tmp_path, monkeypatch, failure):
    path = tmp_path / "report.json"
    path.write_text("old\n")

    def fail(fd):
        raise failure

    monkeypatch.setattr(files.os, "fsync", fail)
    expected = UserError if isinstance(failure, OSError) else KeyboardInterrupt
    with pytest.raises(expected) as error:
        atomic_write_text(path, "new\n")
    if expected is UserError:
        assert "No space left on device" in error.value.message()
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_check_writable_file_refusals(tmp_path):
    check_writable_file(tmp_path / "out.txt", "--output")  # a new file in an existing folder
    with pytest.raises(UserError, match="output path is a folder .*--output"):
        check_writable_file(tmp_path, "--output")
    with pytest.raises(UserError, match="output folder does not exist"):
        check_writable_file(tmp_path / "no" / "out.txt", "--output")
    if os.geteuid() != 0:  # root writes anywhere
        (tmp_path / "ro").mkdir(mode=0o500)
        with pytest.raises(UserError, match="output folder is not writable"):
            check_writable_file(tmp_path / "ro" / "out.txt", "--output")


def test_check_can_create_dir_refusals(tmp_path):
    check_can_create_dir(tmp_path / "a" / "b" / "run")  # missing parents are created later
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UserError, match="run dir is a file .*choose another --run-dir"):
        check_can_create_dir(tmp_path / "afile")
    with pytest.raises(UserError, match="a parent is a file"):
        check_can_create_dir(tmp_path / "afile" / "run", option="--output-dir")
    if os.geteuid() != 0:
        (tmp_path / "ro").mkdir(mode=0o500)
        with pytest.raises(UserError, match="permission denied"):
            check_can_create_dir(tmp_path / "ro" / "run")
