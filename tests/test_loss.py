"""The fused training losses: the same value and gradients as torch's cross_entropy."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from seqattn.config import model_config
from seqattn.data import Batch
from seqattn.loss import cross_entropy_sum, linear_cross_entropy_sum, teacher_forced_loss
from seqattn.models import build_model


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


def _linear_inputs(bias: bool, n: int = 37):
    torch.manual_seed(1)
    x = torch.randn(n, 6, requires_grad=True)
    weight = (0.8 * torch.randn(29, 6)).requires_grad_()
    b = (0.5 * torch.randn(29)).requires_grad_() if bias else None
    target = torch.randint(1, 29, (n,))
    target[::5] = 0
    return x, weight, b, target


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("rows", [1, 8, 36, 37, 100])  # chunks that do and do not divide N
def test_linear_loss_matches_the_two_step_path(smoothing, bias, rows):
    x, weight, b, target = _linear_inputs(bias)
    leaves = [t for t in (x, weight, b) if t is not None]
    ours = linear_cross_entropy_sum(x, weight, b, target, 0, smoothing, rows=rows)
    (0.7 * ours).backward()
    ours_grads = [t.grad.clone() for t in leaves]
    for t in leaves:
        t.grad = None
    reference = F.cross_entropy(F.linear(x, weight, b), target, ignore_index=0,
                                label_smoothing=smoothing, reduction="sum")
    (0.7 * reference).backward()
    torch.testing.assert_close(ours, reference)
    for mine, theirs in zip(ours_grads, [t.grad for t in leaves]):
        torch.testing.assert_close(mine, theirs)
    assert ours_grads[0][::5].abs().max() == 0  # padding rows send nothing back


def test_linear_loss_under_bf16_autocast_is_close():
    x, weight, b, target = _linear_inputs(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = linear_cross_entropy_sum(x, weight, b, target, 0, 0.1, rows=8)
    ours.backward()
    grads = [t.grad.clone() for t in (x, weight, b)]
    for t in (x, weight, b):
        t.grad = None
    reference = F.cross_entropy(F.linear(x, weight, b), target, ignore_index=0,
                                label_smoothing=0.1, reduction="sum")
    reference.backward()
    assert grads[0].dtype == grads[1].dtype == torch.float32
    torch.testing.assert_close(ours, reference, rtol=0.02, atol=0.05)
    for mine, theirs in zip(grads, [t.grad for t in (x, weight, b)]):
        torch.testing.assert_close(mine, theirs, rtol=0.05, atol=0.02)


def test_linear_loss_without_gradients_gives_the_value_only():
    x, weight, b, target = _linear_inputs(True)
    with torch.no_grad():
        value = linear_cross_entropy_sum(x, weight, b, target, 0, 0.1, rows=8)
    assert not value.requires_grad
    reference = F.cross_entropy(F.linear(x, weight, b), target, ignore_index=0,
                                label_smoothing=0.1, reduction="sum")
    torch.testing.assert_close(value, reference.detach())


@pytest.mark.parametrize("kind, tied", [("seq2seq", False), ("bahdanau", True), ("bahdanau", False),
                                        ("luong", True), ("transformer", True)])
def test_teacher_forced_loss_is_the_logits_loss(kind, tied):
    """The fused output layer gives the model's own logits' loss and gradients."""
    cfg = model_config(kind=kind, embedding_size=12, rnn={"hidden_size": 16}, dropout=0.0,
                       transformer={"heads": 2, "ff_size": 16, "attention_dropout": 0.0},
                       tie_embeddings=tied, share_embeddings=tied)
    torch.manual_seed(2)
    model = build_model(cfg, 23, 23)
    g = torch.Generator().manual_seed(3)
    src = torch.randint(4, 23, (4, 6), generator=g)
    src[1, 4:] = 0
    tgt = torch.randint(4, 23, (4, 6), generator=g)
    tgt[2, 3:] = 0
    tgt_in = torch.cat([torch.full((4, 1), 2), tgt[:, :-1]], dim=1)
    batch = Batch(src=src, src_lengths=(src != 0).sum(1), tgt_in=tgt_in, tgt_out=tgt,
                  indices=torch.arange(4))
    fused = teacher_forced_loss(model, batch, 0, 0.1)
    fused.backward()
    fused_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    logits = model(batch)
    plain = cross_entropy_sum(logits.flatten(0, 1), tgt.flatten(), 0, 0.1)
    plain.backward()
    torch.testing.assert_close(fused, plain)
    assert fused_grads.keys() == {n for n, p in model.named_parameters() if p.grad is not None}
    for name, p in model.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(fused_grads[name], p.grad, msg=name)
    assert not model.generator.deferring  # the context ends with the loss
