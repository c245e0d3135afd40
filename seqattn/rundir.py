"""The run directory's layout, in one place (shared/CONTRACT.md, "Run directory").

    RUN_DIR/config.yaml             the fully resolved config
    RUN_DIR/tokenizer/              SentencePiece model(s)
    RUN_DIR/cache/                  the encoded corpus
    RUN_DIR/checkpoints/            last.pt, best.pt, stepNNNNNNN.pt (train.keep_last), averaged.pt
    RUN_DIR/metrics.jsonl           one JSON object per training event
    RUN_DIR/valid/                  dev hypotheses per validation
    RUN_DIR/eval/                   evaluate's reports and hypotheses
    RUN_DIR/shortlist.pt            the lexical shortlist's table (search.shortlist)
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from seqattn.errors import UserError
from seqattn.files import check_can_create_dir

STEP_FILE = re.compile(r"^step(\d+)\.pt$")
TRAINING_CHECKPOINTS = ("last.pt", "best.pt")


class RunDir:
    """Paths inside one run directory, and the rules for starting, resuming and overwriting."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"RunDir({str(self.root)!r})"

    def __str__(self) -> str:
        return str(self.root)

    config = property(lambda self: self.root / "config.yaml")
    tokenizer = property(lambda self: self.root / "tokenizer")
    cache = property(lambda self: self.root / "cache")
    checkpoints = property(lambda self: self.root / "checkpoints")
    last = property(lambda self: self.checkpoints / "last.pt")
    best = property(lambda self: self.checkpoints / "best.pt")
    metrics = property(lambda self: self.root / "metrics.jsonl")
    valid = property(lambda self: self.root / "valid")
    eval = property(lambda self: self.root / "eval")
    shortlist = property(lambda self: self.root / "shortlist.pt")

    def checkpoint(self, name: str) -> Path:
        return self.checkpoints / name

    def step_checkpoint(self, step: int) -> Path:
        return self.checkpoints / f"step{step:07d}.pt"

    def valid_hypotheses(self, step: int) -> Path:
        return self.valid / f"step{step:07d}.hyp.txt"

    def eval_report(self, split: str) -> Path:
        return self.eval / f"{split}.json"

    def eval_hypotheses(self, split: str) -> Path:
        return self.eval / f"{split}.hyp.txt"

    # -- checkpoints ------------------------------------------------------------------------

    def step_checkpoints(self) -> list[Path]:
        """The kept step checkpoints, oldest first."""
        found = [(int(m.group(1)), path) for path in self.checkpoints.glob("step*.pt")
                 if (m := STEP_FILE.match(path.name))]
        return [path for _, path in sorted(found)]

    def prune_step_checkpoints(self, keep: int) -> None:
        """Delete all but the `keep` (>= 1) newest step checkpoints."""
        for path in self.step_checkpoints()[:-keep]:
            path.unlink(missing_ok=True)

    def pick_checkpoint(self, checkpoint: str | None) -> Path:
        """`--checkpoint`: a path, a name in checkpoints/, or (None) best.pt, else last.pt."""
        if checkpoint is not None:
            path = Path(checkpoint)
            return path if path.exists() or path.is_absolute() else self.checkpoint(checkpoint)
        for path in (self.best, self.last):
            if path.exists():
                return path
        raise UserError("run dir has no checkpoints", str(self.checkpoints), "train the model first")

    def is_training_checkpoint(self, path: Path) -> bool:
        return bool(STEP_FILE.match(path.name)) or path.name in TRAINING_CHECKPOINTS

    # -- training's rules -------------------------------------------------------------------

    def has_run(self) -> bool:
        """A run dir 'has a run' once training wrote to it (prepare's outputs do not count)."""
        return self.checkpoints.exists() or self.metrics.exists()

    def check_for_training(self, resume: bool, overwrite: bool) -> None:
        check_can_create_dir(self.root)
        if resume and overwrite:
            raise UserError("--resume and --overwrite exclude each other", str(self.root),
                            "give one of them")
        if resume and not self.last.exists():
            raise UserError("nothing to resume: no checkpoints/last.pt", str(self.root),
                            "train without --resume first")
        if self.has_run() and not (resume or overwrite):
            raise UserError("run dir already holds a run", str(self.root),
                            "pass --resume to continue it or --overwrite to start again")

    def clear_for_overwrite(self) -> None:
        """Remove a previous run, keeping the tokenizer and the encoded cache: prepare reuses
        them only when they still match the config and data."""
        if not self.root.exists():
            return
        keep = {self.tokenizer.name, self.cache.name}
        for child in self.root.iterdir():
            if child.name not in keep:
                shutil.rmtree(child) if child.is_dir() else child.unlink()

    def require(self) -> None:
        """A run dir that 'seqattn train' wrote: a folder with config.yaml."""
        if not self.root.is_dir():
            raise UserError("run dir not found", str(self.root), "pass the --run-dir used for training")
        if not self.config.exists():
            raise UserError("run dir has no config.yaml", str(self.root),
                            "pass a run dir written by 'seqattn train'")
