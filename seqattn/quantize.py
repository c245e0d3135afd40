"""int8 inference on the CPU: every matrix product of decoding with 8-bit weights.

Dynamic quantization (what CTranslate2 and `torch.ao` do): each weight matrix is stored as int8
with one scale per output row; each input is quantized on the fly, the product runs in integer
arithmetic (fbgemm), and the result comes back as float32. Everything else (the recurrence's
gates, attention weights, softmax, the beam) stays float32. Only for translating: a quantized
model cannot be trained.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from seqattn.errors import UserError


def pack_int8(weight: torch.Tensor, bias: torch.Tensor | None):
    """int8 weight (per-row scale) + float bias, in fbgemm's packed layout."""
    weight = weight.detach().float().contiguous()
    scale = (weight.abs().amax(dim=1) / 127.0).clamp_min(1e-8)
    zero = torch.zeros(weight.size(0), dtype=torch.long)
    with warnings.catch_warnings():  # torch marks its quantized tensor types as deprecated
        warnings.simplefilter("ignore")
        make = getattr(torch, "_make_per_channel_quantized_tensor", None)
        if make is not None:  # rounds in one vectorised pass: ~10x faster than quantize_per_channel
            values = torch.round(weight / scale[:, None]).clamp_(-127, 127).to(torch.int8)
            qweight = make(values, scale.double(), zero, 0)
        else:
            qweight = torch.quantize_per_channel(weight, scale.double(), zero, 0, torch.qint8)
        return torch.ops.quantized.linear_prepack(
            qweight, None if bias is None else bias.detach().float().contiguous())


def int8_linear(x: torch.Tensor, packed) -> torch.Tensor:
    # reduce_range=True: 7-bit activations, which fbgemm's AVX2 kernels need to avoid overflow
    return torch.ops.quantized.linear_dynamic(x.float().contiguous(), packed, True)


class Int8Linear(nn.Module):
    """A frozen nn.Linear with int8 weights."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight, self.bias = linear.weight.detach(), None if linear.bias is None else linear.bias.detach()
        self.packed = pack_int8(self.weight, self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return int8_linear(x, self.packed)


def int8_available() -> bool:
    return "fbgemm" in torch.backends.quantized.supported_engines or \
        "x86" in torch.backends.quantized.supported_engines


def quantize_int8(model: nn.Module) -> nn.Module:
    """A copy of `model` for CPU inference with every nn.Linear (and the output layer) in int8."""
    if not int8_available():
        raise UserError("this torch build has no int8 CPU kernels (fbgemm)", "search.precision",
                        "use search.precision=fp32")
    model = copy.deepcopy(model).cpu().eval()
    freeze = getattr(model.decoder, "freeze_token_table", None)  # RNN decoders: see RecurrentStack
    if freeze is not None:
        freeze()  # exact fp32 lookups of the token gate inputs, no product per step
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            # A product to a handful of outputs (attention's energy vector) is a pass over its
            # input either way; quantizing that input would cost more than it saves.
            if isinstance(child, nn.Linear) and child.out_features >= 16:
                setattr(module, name, Int8Linear(child))
    model.generator.use_int8()
    return model


def model_for_decoding(model: nn.Module, precision: str, device) -> nn.Module:
    """The model as `search.precision` asks: itself for fp32, an int8 copy (CPU only) for int8."""
    if precision != "int8":
        return model
    if device.type != "cpu":
        raise UserError("search.precision=int8 runs on the CPU only", f"device {device}",
                        "use --device cpu or search.precision=fp32")
    return quantize_int8(model)
