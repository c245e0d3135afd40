"""The optimizer and the learning-rate schedules (seqattn/optim.py)."""

from __future__ import annotations

import pytest

from seqattn.config import config_from_dict
from seqattn.optim import Schedule


def test_schedules():
    base = config_from_dict({"train": {"lr": 1.0, "warmup_steps": 4, "schedule": "inverse_sqrt"}})
    schedule = Schedule(base.train)
    assert schedule.lr(2) == pytest.approx(0.5) and schedule.lr(4) == pytest.approx(1.0)
    assert schedule.lr(16) == pytest.approx(0.5)
    plateau = Schedule(config_from_dict({"train": {"lr": 1.0, "schedule": "plateau",
                                                    "plateau_patience": 2}}).train)
    for value in (10.0, 9.0, 8.0):
        plateau.after_validation(value, higher_is_better=True)
    assert plateau.lr(100) == pytest.approx(0.5)
    restored = Schedule(base.train)
    restored.load_state_dict(plateau.state_dict())
    assert restored.scale == plateau.scale


def test_decaying_schedules_fall_from_lr_to_min_lr():
    def schedule(kind, **train):
        return Schedule(config_from_dict({"train": {"lr": 1.0, "min_lr": 0.1, "schedule": kind,
                                                    **train}}).train)

    linear, cosine = schedule("linear"), schedule("cosine")
    assert linear.lr(1, 0.0) == pytest.approx(1.0) and cosine.lr(1, 0.0) == pytest.approx(1.0)
    assert linear.lr(9, 0.5) == pytest.approx(0.55) and cosine.lr(9, 0.5) == pytest.approx(0.55)
    assert linear.lr(9, 0.25) == pytest.approx(0.775) and cosine.lr(9, 0.25) > 0.775
    for kind in (linear, cosine):
        assert kind.lr(9, 1.0) == pytest.approx(0.1) and kind.lr(9, 1.7) == pytest.approx(0.1)
        rates = [kind.lr(9, done / 20) for done in range(21)]
        assert rates == sorted(rates, reverse=True)
    warm = schedule("linear", warmup_steps=4)
    assert warm.lr(2, 0.0) < warm.lr(4, 0.0) == pytest.approx(1.0)


def test_adam_betas_reach_the_optimizer_and_are_checked():
    import torch

    from seqattn.errors import UserError
    from seqattn.optim import make_optimizer

    cfg = config_from_dict({"train": {"adam_beta1": 0.8, "adam_beta2": 0.98}}).train
    optimizer = make_optimizer(torch.nn.Linear(2, 2), cfg, torch.device("cpu"))
    assert optimizer.param_groups[0]["betas"] == (0.8, 0.98)
    default = make_optimizer(torch.nn.Linear(2, 2), config_from_dict({}).train, torch.device("cpu"))
    assert default.param_groups[0]["betas"] == (0.9, 0.999)
    for bad in (1.0, -0.1):
        with pytest.raises(UserError, match="adam_beta2"):
            config_from_dict({"train": {"adam_beta2": bad}})
