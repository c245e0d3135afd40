"""Files that must never be half-written, and checks that an output can be written at all.

Every write goes to a temporary file in the same folder, is flushed and fsync'ed, then renamed over
the target: a crash at any instant leaves either the old file or the new one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from seqattn.errors import UserError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
    try:
        atomic_write_bytes(path, text.encode("utf-8"))
    except OSError as exc:
        raise UserError(f"cannot write file: {exc.strerror or exc}", str(path),
                        "free disk space, check permissions, or choose another path") from None


def check_can_create_dir(folder: Path, option: str = "--run-dir") -> None:
    """Fail before any work when `folder` cannot be created or written (a parent is a file...)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError("run dir is a file", str(folder), f"choose another {option}")
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UserError("cannot create the run dir: a parent is a file", str(existing),
                        f"choose another {option}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError("cannot create or write the run dir: permission denied", str(existing),
                        f"choose another {option}")


def check_writable_file(path: Path, option: str) -> None:
    """Fail before any work when an output file cannot be written."""
    if path.is_dir():
        raise UserError("output path is a folder", str(path), f"give a file name to {option}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UserError("output folder does not exist", str(parent), "create it first")
    if not _can_write(parent):
        raise UserError("output folder is not writable", str(parent), "choose another path")


def _can_write(folder: Path) -> bool:
    return os.access(folder, os.W_OK | os.X_OK)
