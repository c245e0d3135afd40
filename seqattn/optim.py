"""The optimizer and the learning-rate schedules."""

from __future__ import annotations

import math

import torch


def make_optimizer(model: torch.nn.Module, cfg, device: torch.device) -> torch.optim.Optimizer:
    """Adam or AdamW; fused (one kernel over all parameters per update) where torch has it."""
    optimizer_class = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return optimizer_class(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                           betas=(cfg.adam_beta1, cfg.adam_beta2), fused=device.type in ("cpu", "cuda"))


class Schedule:
    """constant | plateau (scale down when the dev metric stalls) | inverse_sqrt | linear | cosine,
    each with linear warmup.

    linear and cosine decay the rate from train.lr to train.min_lr over the whole run: `done` is
    the share of the run behind us, measured against the first limit that will stop it
    (train.max_steps, train.max_epochs or train.max_minutes). Against max_minutes the decay
    follows the wall clock, so such a run is not bit-reproducible; it is the schedule that
    makes the most of a fixed time budget.
    """

    def __init__(self, cfg) -> None:
        self.cfg = cfg
        self.scale = 1.0
        self.best: float | None = None
        self.bad = 0

    def lr(self, step: int, done: float = 0.0) -> float:
        cfg = self.cfg
        warm = cfg.warmup_steps
        if cfg.schedule == "inverse_sqrt":
            factor = min(step / warm, math.sqrt(warm / step)) if warm else 1.0 / math.sqrt(step)
        else:
            factor = min(1.0, step / warm) if warm else 1.0
        if cfg.schedule in ("linear", "cosine"):
            done = min(max(done, 0.0), 1.0)
            decay = 1.0 - done if cfg.schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * done))
            return cfg.min_lr + (cfg.lr - cfg.min_lr) * decay * factor
        return max(cfg.lr * self.scale * factor, cfg.min_lr if step > warm else 0.0)

    def after_validation(self, value: float, higher_is_better: bool) -> None:
        if self.cfg.schedule != "plateau":
            return
        improved = self.best is None or (value > self.best if higher_is_better else value < self.best)
        if improved:
            self.best, self.bad = value, 0
            return
        self.bad += 1
        if self.bad >= self.cfg.plateau_patience:
            self.scale *= self.cfg.plateau_factor
            self.bad = 0

    def state_dict(self) -> dict:
        return {"scale": self.scale, "best": self.best, "bad": self.bad}

    def load_state_dict(self, state: dict) -> None:
        self.scale, self.best, self.bad = state["scale"], state["best"], state["bad"]
