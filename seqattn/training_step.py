"""One training update, the same for `seqattn train` and `seqattn bench`.

loss -> backward -> gradient clipping -> optimizer step, under the run's precision. A batch whose
loss or gradient is not finite is skipped (no update), and the caller decides when too many in a
row mean the run diverged.
"""

from __future__ import annotations

import math

import torch

from seqattn.config import TrainConfig
from seqattn.data import Batch
from seqattn.device import autocast
from seqattn.loss import cross_entropy_sum, teacher_forced_loss
from seqattn.tokenizer import PAD_ID


class OptimizerOverflow(Exception):
    """The optimizer step overflowed float32 (e.g. a huge learning rate)."""


def batch_loss(model, batch: Batch, cfg: TrainConfig) -> torch.Tensor:
    """Summed label-smoothed cross-entropy over the batch's real target tokens."""
    if cfg.teacher_forcing < 1.0:
        logits = scheduled_sampling_logits(model, batch, cfg.teacher_forcing)
        return cross_entropy_sum(logits.flatten(0, 1), batch.tgt_out.flatten(), PAD_ID,
                                 cfg.label_smoothing)
    return teacher_forced_loss(model, batch, PAD_ID, cfg.label_smoothing)


def scheduled_sampling_logits(model, batch: Batch, ratio: float) -> torch.Tensor:
    """Step by step; each step feeds the gold token with probability `ratio`, else the model's
    own best guess (Bengio et al. 2015, scheduled sampling)."""
    state = model.encode(batch.src, batch.src_lengths)
    prev = batch.tgt_in[:, 0]
    outputs = []
    for t in range(batch.tgt_in.size(1)):
        log_probs, state = model.step(prev, state)
        outputs.append(log_probs)
        if t + 1 < batch.tgt_in.size(1):
            use_gold = torch.rand(prev.shape, device=prev.device) < ratio
            prev = torch.where(use_gold, batch.tgt_in[:, t + 1], log_probs.argmax(-1))
    return torch.stack(outputs, dim=1)  # log-probabilities: [B, T, V]


def train_step(model, optimizer: torch.optim.Optimizer, batch: Batch, cfg: TrainConfig,
               precision: str, device: torch.device, lr: float) -> float | None:
    """One update at learning rate `lr`; returns the loss per target token, or None when the
    batch was skipped because its loss or gradient norm was NaN/inf."""
    model.train()
    for group in optimizer.param_groups:
        group["lr"] = lr
    tokens = batch.num_tgt_tokens
    with autocast(device, precision):
        loss = batch_loss(model, batch, cfg)
    loss_value = loss.item() / tokens
    optimizer.zero_grad(set_to_none=True)
    if not math.isfinite(loss_value):
        return None
    (loss / tokens).backward()
    norm = (torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_norm)
            if cfg.clip_norm > 0 else torch.tensor(0.0))
    if not math.isfinite(float(norm)):
        optimizer.zero_grad(set_to_none=True)
        return None
    try:
        optimizer.step()
    except RuntimeError as exc:  # e.g. lr / bias correction beyond float32
        if "overflow" not in str(exc):
            raise
        raise OptimizerOverflow(str(exc)) from None
    return loss_value
