"""One training update (seqattn/training_step.py): it learns, accumulates like one batch, skips NaN."""

from __future__ import annotations

import pytest
import torch

from seqattn.config import config_from_dict, model_config
from seqattn.data import Batch
from seqattn.models import build_model
from seqattn.tokenizer import BOS_ID, EOS_ID, PAD_ID
from seqattn.training_step import Update, batch_loss, train_step

VOCAB = 17
CPU = torch.device("cpu")


def make_batch(rows: list[tuple[list[int], list[int]]]) -> Batch:
    """Padded tensors from (source ids, target ids) pairs."""
    src_len = max(len(s) for s, _ in rows) + 1
    tgt_len = max(len(t) for _, t in rows) + 1
    src = torch.full((len(rows), src_len), PAD_ID)
    tgt_in = torch.full((len(rows), tgt_len), PAD_ID)
    tgt_out = torch.full((len(rows), tgt_len), PAD_ID)
    for row, (s, t) in enumerate(rows):
        src[row, : len(s) + 1] = torch.tensor([*s, EOS_ID])
        tgt_in[row, : len(t) + 1] = torch.tensor([BOS_ID, *t])
        tgt_out[row, : len(t) + 1] = torch.tensor([*t, EOS_ID])
    lengths = torch.tensor([len(s) + 1 for s, _ in rows])
    return Batch(src=src, src_lengths=lengths, tgt_in=tgt_in, tgt_out=tgt_out,
                 indices=torch.arange(len(rows)))


ROWS = [([5, 6, 7], [7, 6, 5]), ([8, 9], [9, 8, 4]), ([4, 10, 11, 12], [12, 11]),
        ([13, 14], [14, 13, 15, 16])]


def tiny_model():
    torch.manual_seed(0)
    return build_model(model_config(kind="bahdanau", embedding_size=8, rnn={"hidden_size": 12},
                                    dropout=0.0), VOCAB, VOCAB)


def train_cfg(**train):
    return config_from_dict({"train": {"label_smoothing": 0.0, **train}}).train


def weights(model):
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def test_one_update_changes_the_weights_and_reports_loss_and_tokens():
    model, cfg, batch = tiny_model(), train_cfg(), make_batch(ROWS)
    before = weights(model)
    with torch.no_grad():
        expected = batch_loss(model, batch, cfg).item() / batch.num_tgt_tokens
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    update = train_step(model, optimizer, batch, cfg, "fp32", CPU, lr=0.01)
    assert isinstance(update, Update) and update.tokens == batch.num_tgt_tokens == 16
    assert update.loss == pytest.approx(expected, rel=1e-5)
    changed = [name for name, p in model.named_parameters() if not torch.equal(p, before[name])]
    assert len(changed) == len(before)
    assert optimizer.param_groups[0]["lr"] == 0.01


def test_two_batches_update_like_their_concatenation():
    """Accumulation divides by the tokens of the whole update, not per batch."""
    cfg = train_cfg(clip_norm=0.0)
    one, two = tiny_model(), tiny_model()
    whole = train_step(one, torch.optim.SGD(one.parameters(), lr=1.0), make_batch(ROWS), cfg,
                       "fp32", CPU, lr=1.0)
    parts = train_step(two, torch.optim.SGD(two.parameters(), lr=1.0),
                       [make_batch(ROWS[:1]), make_batch(ROWS[1:])], cfg, "fp32", CPU, lr=1.0)
    assert parts.tokens == whole.tokens and parts.loss == pytest.approx(whole.loss, rel=1e-5)
    for (name, a), b in zip(one.named_parameters(), two.parameters()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5, msg=name)


def test_a_nan_loss_skips_the_update_and_leaves_the_weights():
    model, cfg = tiny_model(), train_cfg()
    with torch.no_grad():
        model.generator.proj.bias[5] = float("nan")
    before = weights(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    assert train_step(model, optimizer, make_batch(ROWS), cfg, "fp32", CPU, lr=0.01) is None
    for name, p in model.named_parameters():
        torch.testing.assert_close(p, before[name], rtol=0, atol=0, equal_nan=True, msg=name)
        assert p.grad is None, name
    assert not optimizer.state  # Adam never stepped: no moments


def test_scheduled_sampling_fed_gold_tokens_is_the_teacher_forced_loss():
    """Step by step with (almost surely) every gold token fed back: the teacher-forced loss."""
    model, batch = tiny_model().eval(), make_batch(ROWS)
    with torch.no_grad():
        forced = batch_loss(model, batch, train_cfg())
        sampled = batch_loss(model, batch, train_cfg(teacher_forcing=0.999999))
    assert sampled.item() == pytest.approx(forced.item(), rel=1e-4)
