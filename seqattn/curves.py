"""Learning curves: training loss, dev loss and dev BLEU of runs, read from their metrics.jsonl.

`seqattn plot RUN_DIR... --output curves.png` draws them; `seqattn serve` hands the same series
to its page. matplotlib is only needed for the picture (`pip install 'seqattn[plot]'`).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seqattn.errors import UserError

X_AXES = {"steps": "step", "minutes": "minutes", "tokens": "target tokens"}


@dataclass(frozen=True)
class RunCurves:
    """One run's series; every list in `train` (and in `valid`) has one entry per event."""

    name: str
    train: dict[str, list[float]] = field(default_factory=dict)  # steps, minutes, tokens, loss
    valid: dict[str, list[float]] = field(default_factory=dict)  # steps, minutes, tokens, loss, bleu

    def to_json(self) -> dict:
        """Plain JSON: a missing value (NaN here) becomes null."""
        def clean(series: dict[str, list[float]]) -> dict[str, list[float | None]]:
            return {k: [v if math.isfinite(v) else None for v in values] for k, values in series.items()}
        return {"name": self.name, "train": clean(self.train), "valid": clean(self.valid)}


def run_names(run_dirs: list[Path]) -> list[str]:
    """A short, unique label per run: its folder name, with the parent's in front where two clash."""
    paths = [Path(os.path.abspath(p)) for p in run_dirs]
    short = [p.name or str(p) for p in paths]
    names = [f"{p.parent.name}/{p.name}" if short.count(name) > 1 else name
             for p, name in zip(paths, short)]
    seen: dict[str, int] = {}
    unique = []
    for name in names:  # the same folder given twice: name, name#2, ...
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return unique


def metrics_path(run_dir: Path) -> Path:
    from seqattn.rundir import RunDir

    return RunDir(run_dir).metrics


def _read_events(run_dir: Path) -> list[dict]:
    if not run_dir.is_dir():
        raise UserError("run dir not found", str(run_dir), "pass a run dir written by 'seqattn train'")
    path = metrics_path(run_dir)
    if not path.is_file():
        raise UserError("run dir has no metrics.jsonl", str(run_dir),
                        "pass a run dir written by 'seqattn train' (after its first logged step)")
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise UserError(f"cannot read metrics ({exc.strerror})", str(path), "check permissions") from None
    events = []
    for line in lines:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line torn by a kill mid-write: the rest of the file is still good
        if isinstance(event, dict) and event.get("event") in ("train", "valid"):
            events.append(event)
    return events


def _number(value) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else float("nan")


def read_curves(run_dir: Path, name: str | None = None) -> RunCurves:
    """The train and valid series of one run (NaN where an event lacks a field)."""
    run_dir = Path(run_dir)
    events = _read_events(run_dir)
    train = [e for e in events if e["event"] == "train"]
    valid = [e for e in events if e["event"] == "valid"]
    if not train and not valid:
        raise UserError("metrics.jsonl holds no train or valid events", str(metrics_path(run_dir)),
                        "let the run log at least one step (train.log_every)")
    train_steps = [_number(e.get("step")) for e in train]
    train_tokens = [_number(e.get("tgt_tokens")) for e in train]
    valid_steps = [_number(e.get("step")) for e in valid]
    # Valid events carry no token count: take it from the train events around the same step.
    valid_tokens = (np.interp(valid_steps, train_steps, train_tokens).tolist() if train
                    else [float("nan")] * len(valid))
    return RunCurves(
        name=name or run_dir.name,
        train={"steps": train_steps, "minutes": [_number(e.get("elapsed")) / 60 for e in train],
               "tokens": train_tokens, "loss": [_number(e.get("loss")) for e in train]},
        valid={"steps": valid_steps, "minutes": [_number(e.get("elapsed")) / 60 for e in valid],
               "tokens": valid_tokens, "loss": [_number(e.get("loss")) for e in valid],
               "bleu": [_number(e.get("bleu")) for e in valid]})


def check_x_axis(x: str) -> str:
    if x not in X_AXES:
        raise UserError(f"unknown x axis '{x}'", "--x", "use steps, minutes or tokens")
    return x


def check_output(output: Path, plt) -> None:
    """Fail before reading anything when the picture could not be written."""
    if output.is_dir():
        raise UserError("output path is a folder", str(output), "give a file name, e.g. curves.png")
    parent = output.parent if str(output.parent) else Path(".")
    if not parent.is_dir():
        raise UserError("output folder does not exist", str(parent), "create it first")
    if not os.access(parent, os.W_OK) or (output.exists() and not os.access(output, os.W_OK)):
        raise UserError("output is not writable", str(output), "choose a writable path for --output")
    formats = plt.figure().canvas.get_supported_filetypes()
    plt.close("all")
    suffix = output.suffix.lower().lstrip(".")
    if suffix not in formats:
        raise UserError(f"unknown picture format '.{suffix}'", str(output),
                        "end --output with .png, .svg or .pdf")


def draw_curves(curves: list[RunCurves], x: str, plt):
    """One figure, three panels: training loss, dev loss, dev BLEU; one line per run."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    panels = [(axes[0], "train", "loss", "training loss"), (axes[1], "valid", "loss", "dev loss"),
              (axes[2], "valid", "bleu", "dev BLEU (greedy)")]
    for ax, part, key, title in panels:
        for run in curves:
            series = getattr(run, part)
            if series.get(key):
                marker = "o" if part == "valid" else None
                ax.plot(series[x], series[key], label=run.name, marker=marker, markersize=3)
        ax.set_title(title)
        ax.set_xlabel(X_AXES[x])
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError("learning curves need matplotlib", "seqattn plot",
                        "pip install 'seqattn[plot]' (or matplotlib)") from None
    return plt


def plot_runs(run_dirs: list[Path], output: Path, x: str = "steps") -> Path:
    """Write the learning curves of `run_dirs` to `output` (PNG, SVG, PDF by its suffix)."""
    check_x_axis(x)
    plt = _pyplot()
    output = Path(output)
    check_output(output, plt)
    curves = [read_curves(Path(d), name) for d, name in zip(run_dirs, run_names(run_dirs))]
    fig = draw_curves(curves, x, plt)
    try:
        fig.savefig(output, dpi=110)
    except OSError as exc:
        raise UserError(f"cannot write the picture ({exc.strerror})", str(output),
                        "choose a writable path for --output") from None
    finally:
        plt.close(fig)
    return output
