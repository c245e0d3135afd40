"""`seqattn average`: the mean of a run's last checkpoints, one model that is often better than each.

With `train.keep_last: N` the trainer keeps the weights of its last N saves (every
`train.save_every` steps) as `checkpoints/stepNNNNNNN.pt`. Averaging them (Vaswani et al. 2017;
fairseq's and OpenNMT's `average_models`) smooths the noise of the last updates. Only floating
point tensors are averaged; everything else is the newest checkpoint's.
"""

from __future__ import annotations

from pathlib import Path

import torch

from seqattn.checkpoint import load_checkpoint, save_checkpoint
from seqattn.errors import UserError
from seqattn.rundir import RunDir


def average_payloads(paths: list[Path]) -> dict:
    """Mean of the models in `paths` (all from one run: same config, vocabulary and shapes)."""
    newest = load_checkpoint(paths[-1])
    reference = newest["model"]
    sums = {k: v.to(torch.float64) for k, v in reference.items() if v.is_floating_point()}
    for path in paths[:-1]:
        state = load_checkpoint(path)
        if state.get("config", {}).get("model") != newest.get("config", {}).get("model") \
                or state.get("vocab") != newest.get("vocab"):
            raise UserError("checkpoints come from different models or vocabularies", str(path),
                            "average checkpoints of one run only")
        model = state["model"]
        if model.keys() != reference.keys() or any(
                model[k].shape != reference[k].shape for k in reference):
            raise UserError("checkpoint's tensors differ from the newest one's", str(path),
                            "average checkpoints of one run only")
        for key in sums:
            sums[key] += model[key].to(torch.float64)
    averaged = {k: (sums[k] / len(paths)).to(v.dtype) if k in sums else v
                for k, v in reference.items()}
    payload = {k: v for k, v in newest.items() if k not in ("optimizer", "schedule", "rng")}
    payload["model"] = averaged
    payload["averaged_from"] = [path.name for path in paths]
    return payload


def average_run(run_dir: Path, last: int, output: str = "averaged.pt") -> tuple[Path, list[Path]]:
    """Average the run's `last` newest step checkpoints into checkpoints/`output`."""
    run = RunDir(run_dir)
    if not run.checkpoints.is_dir():
        raise UserError("run dir has no checkpoints", str(run.checkpoints), "train the model first")
    if last < 2:
        raise UserError(f"--last {last}: averaging needs at least 2 checkpoints", "--last",
                        "use --last 2 or more")
    found = run.step_checkpoints()
    if len(found) < last:
        raise UserError(f"--last {last}, but the run kept {len(found)} step checkpoints",
                        str(run.checkpoints), "train with --set train.keep_last=N (N >= --last), "
                        "or lower --last")
    target = Path(output) if Path(output).is_absolute() or "/" in output else run.checkpoint(output)
    if run.is_training_checkpoint(target):
        raise UserError(f"--output {output} would replace a training checkpoint", "--output",
                        "choose another name, e.g. averaged.pt")
    chosen = found[-last:]
    save_checkpoint(average_payloads(chosen), target)
    return target, chosen
