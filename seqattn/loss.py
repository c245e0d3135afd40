"""The training loss: summed, label-smoothed cross-entropy from logits, in few passes.

Same value and gradient as `F.cross_entropy(logits, target, ignore_index=pad,
label_smoothing=eps, reduction="sum")`: per real target token,

    loss = (1 - eps) * (lse - z_y) + eps * (lse - mean_v z_v),   lse = log sum_v exp z_v
    d loss / d z = softmax(z) - (1 - eps) * onehot(y) - eps / V

The logits of a batch are the largest tensor of training ([tokens, V], V = 8,000 here). The
library path materialises log-probabilities, a zero-filled gradient for them and a log-softmax
backward; this one reads the logits once forward (logsumexp; the mean too with smoothing) and
writes the gradient once backward (a row-wise softmax, then the per-row scale and the targets).
"""

from __future__ import annotations

import torch


class _SmoothedCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: torch.Tensor, target: torch.Tensor, smoothing: float,
                ignore_index: int) -> torch.Tensor:
        keep = target != ignore_index
        safe = target.masked_fill(~keep, 0)  # any valid index; those rows are weighted 0
        lse = torch.logsumexp(logits, dim=-1)  # [N]
        per_token = lse - logits.gather(1, safe[:, None]).squeeze(1)
        if smoothing > 0:
            per_token = (1 - smoothing) * per_token + smoothing * (lse - logits.mean(dim=-1))
        ctx.save_for_backward(logits, safe, keep)
        ctx.smoothing = smoothing
        return (per_token * keep).sum()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        logits, safe, keep = ctx.saved_tensors
        eps = ctx.smoothing
        scale = (keep.to(logits.dtype) * grad)[:, None]  # [N, 1]: 0 on padding
        out = torch.softmax(logits, dim=-1)
        if eps > 0:
            out.sub_(eps / logits.size(1))
        out.mul_(scale)
        out.scatter_add_(1, safe[:, None], -(1 - eps) * scale)
        return out, None, None, None


def cross_entropy_sum(logits: torch.Tensor, target: torch.Tensor, ignore_index: int,
                      smoothing: float = 0.0) -> torch.Tensor:
    """logits [N, V] (float32), target [N] -> summed loss over targets != ignore_index."""
    return _SmoothedCrossEntropy.apply(logits.float(), target, float(smoothing), ignore_index)
