"""The training loss: summed, label-smoothed cross-entropy from logits, in few passes.

Same value and gradient as `F.cross_entropy(logits, target, ignore_index=pad,
label_smoothing=eps, reduction="sum")`: per real target token,

    loss = (1 - eps) * (lse - z_y) + eps * (lse - mean_v z_v),   lse = log sum_v exp z_v
    d loss / d z = softmax(z) - (1 - eps) * onehot(y) - eps / V

The logits of a batch are the largest tensor of training ([tokens, V], V = 8,000 here). The
library path materialises log-probabilities, a zero-filled gradient for them and a log-softmax
backward; here one buffer per block of rows holds the shifted logits, then their exponentials,
then the gradient (`_rows_loss`), computed in the forward pass and scaled in backward.
"""

from __future__ import annotations

import torch
from torch import nn


def _rows_loss(z: torch.Tensor, target: torch.Tensor, ignore_index: int, smoothing: float,
               with_grad: bool) -> torch.Tensor:
    """Summed smoothed loss of the logit rows `z` (a scratch copy: overwritten; float32 in the
    fused path, the logits' own dtype in `cross_entropy_sum`); with `with_grad`, `z` ends as the
    gradient of that sum with respect to the logits (zero on padding rows)."""
    keep = target != ignore_index
    safe = target.masked_fill(~keep, 0)  # any valid index; those rows are weighted 0
    z.sub_(z.amax(dim=-1, keepdim=True))  # shifted: the loss and softmax are unchanged
    z_y = z.gather(1, safe[:, None]).squeeze(1)
    z_mean = z.mean(dim=-1) if smoothing > 0 else None
    log_sum = z.exp_().sum(dim=-1).log()  # z now holds exp(z - max)
    per_token = log_sum - z_y
    if smoothing > 0:
        per_token = (1 - smoothing) * per_token + smoothing * (log_sum - z_mean)
    if with_grad:
        z.mul_(torch.exp(-log_sum)[:, None])  # softmax
        if smoothing > 0:
            z.sub_(smoothing / z.size(1))
        z.scatter_add_(1, safe[:, None], z.new_full((len(target), 1), -(1 - smoothing)))
        pad_rows = (~keep).nonzero().squeeze(1)
        if len(pad_rows):
            z.index_fill_(0, pad_rows, 0.0)
    return (per_token * keep).sum()


class _SmoothedCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: torch.Tensor, target: torch.Tensor, smoothing: float,
                ignore_index: int) -> torch.Tensor:
        z = logits.clone()  # becomes the gradient: one [N, V] buffer, as saving the logits was
        total = _rows_loss(z, target, ignore_index, smoothing, ctx.needs_input_grad[0])
        ctx.grad_logits = z if ctx.needs_input_grad[0] else None
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        out, ctx.grad_logits = ctx.grad_logits.mul_(grad), None
        return out, None, None, None


def cross_entropy_sum(logits: torch.Tensor, target: torch.Tensor, ignore_index: int,
                      smoothing: float = 0.0) -> torch.Tensor:
    """logits [N, V] (float32), target [N] -> summed loss over targets != ignore_index."""
    return _SmoothedCrossEntropy.apply(logits.float(), target, float(smoothing), ignore_index)


class _LinearCrossEntropy(torch.autograd.Function):
    """The output layer and the loss in one pass over row chunks; the [N, V] logits never exist.

    For each chunk of rows: logits = x W^T + b, the loss, and at once the gradient of the summed
    loss with respect to those logits (softmax minus the smoothed targets), which the chunk's
    matrix products turn into the gradients of x, W and b. The library path writes and reads
    [N, V] logits, their gradient and the softmax across forward and backward; here each chunk
    is a few passes over one buffer. The gradients are computed for an upstream gradient of 1
    and scaled in backward (the loss is a scalar). Memory: one chunk of logits, not N rows.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, target, smoothing: float, ignore_index: int, rows: int):
        needs_x, needs_w, needs_b = ctx.needs_input_grad[:3]
        any_grad = needs_x or needs_w or needs_b
        vocab = weight.size(0)
        # float32 without autocast (the CPU default): products write into one reused buffer
        # (a fresh 16 MiB tensor per chunk costs page faults); otherwise autocast picks dtypes.
        plain = not torch.is_autocast_enabled(x.device.type) and \
            x.dtype == weight.dtype == torch.float32
        buffer = x.new_empty(min(rows, x.size(0)), vocab) if plain else None
        grad_x = torch.empty_like(x) if needs_x else None
        grad_w = torch.zeros_like(weight, dtype=torch.float32) if needs_w else None
        grad_b = torch.zeros(vocab, dtype=torch.float32, device=x.device) if needs_b else None
        total = torch.zeros((), dtype=torch.float32, device=x.device)
        for start in range(0, x.size(0), rows):
            xs, ys = x[start:start + rows], target[start:start + rows]
            if plain:
                z = torch.mm(xs, weight.t(), out=buffer[:len(xs)])  # [c, V]
                if bias is not None:
                    z.add_(bias)
            else:
                z = nn.functional.linear(xs, weight, bias).float()
            total += _rows_loss(z, ys, ignore_index, smoothing, any_grad)
            g = z  # now the gradient of the chunk's loss with respect to its logits
            if needs_x:
                if plain:
                    torch.mm(g, weight, out=grad_x[start:start + rows])
                else:
                    grad_x[start:start + rows] = torch.mm(g.to(weight.dtype), weight).to(x.dtype)
            if needs_w:
                if plain:
                    grad_w.addmm_(g.t(), xs)
                else:
                    grad_w.add_(torch.mm(g.t().to(xs.dtype), xs).float())
            if needs_b:
                grad_b.add_(g.sum(dim=0))
        # Intermediates, not inputs: kept on ctx (no double backward through a loss).
        ctx.grads = (grad_x, grad_w, grad_b)
        ctx.dtypes = (x.dtype, weight.dtype, bias.dtype if bias is not None else None)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grads = [None if g is None else (g * grad).to(dtype)
                 for g, dtype in zip(ctx.grads, ctx.dtypes)]
        ctx.grads = None
        return (*grads, None, None, None, None)


def linear_cross_entropy_sum(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                             target: torch.Tensor, ignore_index: int, smoothing: float = 0.0,
                             rows: int | None = None) -> torch.Tensor:
    """`cross_entropy_sum(x @ weight.T + bias, ...)` without materialising the logits.

    x [N, D], weight [V, D], bias [V] or None, target [N]. `rows` per chunk defaults to about
    16 MiB of float32 logits (measured: 128 to 2,048 rows of 8,000 logits differ by ~10%).
    """
    rows = rows or max(16, (1 << 22) // weight.size(0))
    return _LinearCrossEntropy.apply(x, weight, bias, target, float(smoothing), ignore_index, rows)


def teacher_forced_loss(model, batch, ignore_index: int, smoothing: float = 0.0) -> torch.Tensor:
    """Summed loss of a teacher-forced batch, the model's output layer fused with the loss."""
    with model.generator.deferred():
        features = model(batch)  # [B, T, D]
    weight, bias = model.generator.output_weights()
    return linear_cross_entropy_sum(features.flatten(0, 1), weight, bias,
                                    batch.tgt_out.flatten(), ignore_index, smoothing)


@torch.inference_mode()
def corpus_loss(model, data, batch_size: int, device: torch.device) -> tuple[float, int]:
    """Summed cross-entropy (no smoothing) of the references of an EncodedSplit, and their
    token count: dev loss during training, perplexity in evaluate."""
    from seqattn.data import make_batch, sentence_batches
    from seqattn.tokenizer import PAD_ID

    model.eval()
    total, tokens = 0.0, 0
    for indices in sentence_batches([len(s) + 1 for s in data.src], batch_size):
        batch = make_batch(data, indices).to(device)
        logits = model(batch)
        total += float(cross_entropy_sum(logits.flatten(0, 1), batch.tgt_out.flatten(), PAD_ID))
        tokens += batch.num_tgt_tokens
    return total, tokens
