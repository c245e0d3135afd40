"""RUN_DIR/metrics.jsonl: one JSON object per training event (shared/CONTRACT.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from seqattn.errors import UserError
from seqattn.files import atomic_write_text


class MetricsLog:
    """Appends events; on resume, forgets those logged after the checkpoint."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def write(self, record: dict) -> None:
        try:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
        except OSError as exc:
            raise UserError(f"cannot write metrics: {exc.strerror or exc}", str(self.path),
                            "free disk space; checkpoints/last.pt is intact, resume with --resume"
                            ) from None

    def forget_after(self, step: int) -> None:
        """Drop events logged after `step` (a kill loses them): resumed steps log once."""
        if not self.path.exists():
            return
        kept = [line for line in self.path.read_text(encoding="utf-8").splitlines()
                if line.strip() and _event_step(line) <= step]
        atomic_write_text(self.path, "".join(line + "\n" for line in kept))


def _event_step(line: str) -> int:
    try:
        return int(json.loads(line).get("step", 0))
    except (ValueError, AttributeError):
        return sys.maxsize  # a line torn by a kill: dropped with the events after the checkpoint
