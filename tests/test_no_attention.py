"""The decoder without attention (seqattn/models/no_attention.py): one fixed vector of the source."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from seqattn.models import build_model
from tests.test_models import VOCAB, make_inputs, tiny


@pytest.mark.parametrize("every_step", [False, True])
def test_the_source_reaches_the_decoder_only_through_its_first_state(every_step):
    torch.manual_seed(0)
    model = build_model(tiny(kind="seq2seq", rnn=dict(context_every_step=every_step)), VOCAB, VOCAB).eval()
    assert not model.has_attention
    src, lengths, tgt_in = make_inputs()
    state = model.encode(src, lengths)
    assert state.memory is None and state.keys is None and state.attention is None
    if every_step:  # Cho et al.: c is the first state's top layer, and stays the same
        assert torch.equal(state.fixed_context, state.hidden[-1])
    else:
        assert state.fixed_context is None
    context = state.fixed_context
    for t in range(3):
        _, state = model.step(tgt_in[:, t], state)
        assert state.fixed_context is context and state.attention is None


def test_with_context_every_step_each_step_reads_c():
    """s_t = f(s_{t-1}, y_{t-1}, c) and p(y_t) = g(s_t, y_{t-1}, c): another c, another output."""
    torch.manual_seed(0)
    model = build_model(tiny(kind="seq2seq", rnn=dict(context_every_step=True)), VOCAB, VOCAB).eval()
    src, lengths, tgt_in = make_inputs()
    state = model.encode(src, lengths)
    log_probs, after = model.step(tgt_in[:, 0], state)
    zeroed = dataclasses.replace(state, fixed_context=torch.zeros_like(state.fixed_context))
    other, other_after = model.step(tgt_in[:, 0], zeroed)
    assert not torch.allclose(log_probs, other) and not torch.allclose(after.hidden[-1],
                                                                       other_after.hidden[-1])
