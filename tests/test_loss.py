"""The fused training loss: the same value and gradient as torch's cross_entropy."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from seqattn.loss import cross_entropy_sum


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_value_and_gradient_match_torch(smoothing):
    torch.manual_seed(0)
    logits = (3 * torch.randn(40, 30)).requires_grad_()
    target = torch.randint(1, 30, (40,))
    target[::7] = 0  # padding rows: no loss, no gradient
    ours = cross_entropy_sum(logits, target, ignore_index=0, smoothing=smoothing)
    (2.5 * ours).backward()
    ours_grad, logits.grad = logits.grad.clone(), None
    reference = F.cross_entropy(logits, target, ignore_index=0, label_smoothing=smoothing,
                                reduction="sum")
    (2.5 * reference).backward()
    torch.testing.assert_close(ours, reference)
    torch.testing.assert_close(ours_grad, logits.grad)
    assert ours_grad[::7].abs().max() == 0


def test_every_row_padding_gives_zero():
    logits = torch.randn(3, 5, requires_grad=True)
    loss = cross_entropy_sum(logits, torch.zeros(3, dtype=torch.long), ignore_index=0, smoothing=0.1)
    loss.backward()
    assert loss.item() == 0 and logits.grad.abs().max() == 0
