"""Device and precision choice (seqattn/device.py)."""

from __future__ import annotations

import pytest
import torch

from seqattn import device as device_module
from seqattn.device import autocast, resolve_device, resolve_precision
from seqattn.errors import UserError


def test_auto_resolves_to_an_available_device():
    chosen = resolve_device("auto")
    assert chosen.type in ("cuda", "mps", "cpu")
    if chosen.type == "cuda":
        assert torch.cuda.is_available()
    assert resolve_device("cpu") == torch.device("cpu")


def test_auto_falls_back_to_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device_module, "_mps_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")


def test_an_explicit_missing_device_is_a_user_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device_module, "_mps_available", lambda: False)
    with pytest.raises(UserError, match="no CUDA device .*train.device=auto or cpu"):
        resolve_device("cuda")
    with pytest.raises(UserError, match="MPS is not available"):
        resolve_device("mps")


@pytest.mark.parametrize("fast_bf16, expected", [(True, "bf16"), (False, "fp32")])
def test_auto_precision_on_the_cpu_follows_its_bf16_units(monkeypatch, fast_bf16, expected):
    monkeypatch.setattr(device_module, "cpu_has_fast_bf16", lambda: fast_bf16)
    assert resolve_precision("auto", torch.device("cpu")) == expected


def test_explicit_precision_is_kept_and_other_devices_get_fp32(monkeypatch):
    monkeypatch.setattr(device_module, "cpu_has_fast_bf16", lambda: True)
    assert resolve_precision("fp32", torch.device("cpu")) == "fp32"
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"
    assert resolve_precision("auto", torch.device("mps")) == "fp32"
    for supported, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda s=supported: s)
        assert resolve_precision("auto", torch.device("cuda")) == expected


def test_autocast_computes_in_bf16_only_for_bf16():
    a, b = torch.randn(4, 8), torch.randn(8, 3)
    cpu = torch.device("cpu")
    with autocast(cpu, "bf16"):
        assert (a @ b).dtype == torch.bfloat16
    with autocast(cpu, "fp32"):
        assert (a @ b).dtype == torch.float32
