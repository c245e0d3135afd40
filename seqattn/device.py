"""Where the arithmetic runs and in which precision."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path

import torch

from seqattn.errors import UserError


def resolve_device(name: str) -> torch.device:
    """`auto` picks cuda > mps > cpu; an explicit device that is missing is a user error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("train.device is cuda but no CUDA device is available", "train.device",
                        "use train.device=auto or cpu")
    if name == "mps" and not _mps_available():
        raise UserError("train.device is mps but MPS is not available", "train.device",
                        "use train.device=auto or cpu")
    return torch.device(name)


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def cpu_has_fast_bf16() -> bool:
    """bf16 matrix units (AMX or AVX512-BF16); without them bf16 is far slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_precision(name: str, device: torch.device) -> str:
    """`auto`: bf16 where the hardware has bf16 matrix units, else fp32."""
    if name != "auto":
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu":
        return "bf16" if cpu_has_fast_bf16() else "fp32"
    return "fp32"


def autocast(device: torch.device, precision: str) -> AbstractContextManager:
    """bf16 autocast for `precision` bf16 (weights and the optimizer stay float32)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
