"""One training update, the same for `seqattn train` and `seqattn bench`.

loss -> backward -> gradient clipping -> optimizer step, under the run's precision. An update
may span several batches (`train.accumulate`) and several ranks (DDP, seqattn/distributed.py);
either way its gradient is that of the summed loss divided by the update's target tokens, all
batches and ranks together, so N ranks x K batches of B tokens is one update of N*K*B tokens.
An update whose loss or gradient is not finite is skipped (no update), and the caller decides
when too many in a row mean the run diverged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from seqattn.config import TrainConfig
from seqattn.data import Batch
from seqattn.device import autocast
from seqattn.distributed import sum_over_ranks
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


class BatchLoss(nn.Module):
    """`batch_loss` as a module's forward. DDP wraps this, not the model: the fused output layer
    and loss use the generator's weights outside the model's forward, and DDP must see the whole
    computation that produces the gradients it reduces."""

    def __init__(self, model: nn.Module, cfg: TrainConfig) -> None:
        super().__init__()
        self.model, self.cfg = model, cfg

    def forward(self, batch: Batch) -> torch.Tensor:
        return batch_loss(self.model, batch, self.cfg)


@dataclass(frozen=True)
class Update:
    """What one update did: its loss per target token and its target tokens (all ranks)."""

    loss: float
    tokens: int


def _summed_loss(model, batch: Batch, cfg: TrainConfig) -> torch.Tensor:
    if isinstance(model, DistributedDataParallel):  # DDP(BatchLoss(model)): forward is the loss
        return model(batch)
    return batch_loss(model, batch, cfg)


def _backward_all(model, batches: Sequence[Batch], cfg: TrainConfig, precision: str,
                  device: torch.device, ranks: int, tokens: int) -> float:
    """Forward and backward of each batch, gradients summed; returns the local summed loss."""
    total = 0.0
    for index, batch in enumerate(batches):
        # DDP reduces gradients in backward; only the update's last batch needs it.
        last = index == len(batches) - 1
        quiet = model.no_sync() if isinstance(model, DistributedDataParallel) and not last \
            else nullcontext()
        with quiet:
            with autocast(device, precision):
                loss = _summed_loss(model, batch, cfg)
            total += loss.item()
            # Always backward, even a non-finite loss: under DDP every rank must join the
            # gradient reduction; the update is then dropped on every rank alike.
            (loss * ranks / tokens).backward()  # one process: exactly loss / tokens
    return total


def train_step(model, optimizer: torch.optim.Optimizer, batch: Batch | Sequence[Batch],
               cfg: TrainConfig, precision: str, device: torch.device, lr: float) -> Update | None:
    """One update at learning rate `lr` from one batch or a list of them (accumulation).

    `model` is the model, or under DDP the DistributedDataParallel of its BatchLoss. Returns the
    loss per target token and the tokens, or None when the update was skipped because its loss
    or gradient norm was NaN/inf (decided alike on every rank: both are reduced over ranks).
    """
    batches = [batch] if isinstance(batch, Batch) else list(batch)
    model.train()
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    # The normaliser: target tokens of the whole update, summed over ranks before any backward.
    tokens = int(sum_over_ranks([sum(b.num_tgt_tokens for b in batches)], device)[0])
    ranks = model.process_group.size() if isinstance(model, DistributedDataParallel) else 1
    # DDP averages gradients over the ranks; `ranks` undoes that, leaving sum / tokens.
    local = _backward_all(model, batches, cfg, precision, device, ranks, tokens)
    loss_sum = sum_over_ranks([local], device)[0]
    if not math.isfinite(loss_sum):
        optimizer.zero_grad(set_to_none=True)
        return None
    norm = (torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_norm)
            if cfg.clip_norm > 0 else torch.tensor(0.0))
    if not math.isfinite(float(norm)):  # the reduced gradients: the same norm on every rank
        optimizer.zero_grad(set_to_none=True)
        return None
    try:
        optimizer.step()
    except RuntimeError as exc:  # e.g. lr / bias correction beyond float32
        if "overflow" not in str(exc):
            raise
        raise OptimizerOverflow(str(exc)) from None
    return Update(loss_sum / tokens, tokens)
