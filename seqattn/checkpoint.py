"""Files that must never be half-written, and checkpoints that are data, never code.

Every write goes to a temporary file in the same folder, is flushed and fsync'ed, then renamed over
the target: a crash at any instant leaves either the old file or the new one.
"""

from __future__ import annotations

import io
import os
import pickle
import tempfile
import warnings
from pathlib import Path
from typing import Any

from seqattn.errors import UserError


def _atomic_write_bytes(path: Path, data: bytes) -> None:
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
        _atomic_write_bytes(path, text.encode("utf-8"))
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


def save_checkpoint(payload: dict[str, Any], path: Path) -> None:
    """Serialise to memory first, so a failing write (disk full) never touches the old file."""
    import torch  # here, not at the top: text writes and CLI checks need no torch (~2 s to import)

    buffer = io.BytesIO()
    torch.save(payload, buffer)
    try:
        _atomic_write_bytes(path, buffer.getvalue())
    except OSError as exc:
        raise UserError(f"cannot write checkpoint: {exc.strerror or exc}", str(path),
                        "free disk space or choose another --run-dir; the previous checkpoint "
                        "is intact") from None


def _refusal_detail(exc: Exception) -> str:
    """The part of torch's weights-only refusal that names the culprit, without its advice to
    re-run with weights_only=False or to allow-list the global (either would run the file)."""
    for line in str(exc).splitlines():
        line = line.strip()
        if "GLOBAL" in line or line.lower().startswith("unsupported"):
            return _first_sentence(line.removeprefix("WeightsUnpickler error: "))
    return "unsupported content"


def _first_sentence(text: str) -> str:
    text = text.strip().splitlines()[0] if text.strip() else ""
    return text.split(". ")[0].rstrip(".")[:200]


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load with weights_only=True: tensors and plain containers only, never code."""
    path = Path(path)
    if not path.exists():
        raise UserError("checkpoint not found", str(path),
                        "train first, or pass an existing checkpoint")
    import torch

    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": noise on a refusal
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UserError(f"checkpoint refused, it holds more than tensors and plain data "
                        f"({_refusal_detail(exc)})", str(path),
                        "only load checkpoints written by seqattn") from None
    except (RuntimeError, EOFError, ValueError, OSError, AttributeError) as exc:
        first = _first_sentence(str(exc)) or type(exc).__name__
        raise UserError(f"checkpoint is corrupt or truncated ({first})", str(path),
                        "use another checkpoint (e.g. last.pt or best.pt) or retrain") from None
    if not isinstance(payload, dict) or "model" not in payload:
        raise UserError("file is not a seqattn checkpoint", str(path),
                        "pass a checkpoint written by seqattn train")
    return payload
