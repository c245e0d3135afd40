"""The Luong decoder (seqattn/models/luong.py): attention from the current state, input feeding."""

from __future__ import annotations

import pytest
import torch

from seqattn.models import build_model
from tests.test_models import VOCAB, make_inputs, tiny


def test_attention_is_scored_from_the_current_state():
    """a_t depends on h_t, which has read y_{t-1} (their eq. 7): another token, another weighting."""
    torch.manual_seed(0)
    model = build_model(tiny(kind="luong", attention=dict(score="general")), VOCAB, VOCAB).eval()
    src, lengths, _ = make_inputs()
    state = model.encode(src, lengths)
    _, after_a = model.step(torch.full((3,), 5), state)
    _, after_b = model.step(torch.full((3,), 9), state)
    assert not torch.allclose(after_a.attention, after_b.attention)
    _, expected = model.decoder.attention(after_a.hidden[-1][:, None, :], state.keys, state.memory,
                                          state.src_mask)
    torch.testing.assert_close(after_a.attention, expected[:, 0])


@pytest.mark.parametrize("feeding", [True, False])
def test_input_feeding_carries_the_attentional_vector(feeding):
    torch.manual_seed(0)
    model = build_model(tiny(kind="luong", attention=dict(input_feeding=feeding)), VOCAB, VOCAB).eval()
    src, lengths, tgt_in = make_inputs()
    state = model.encode(src, lengths)
    if not feeding:
        assert state.input_feed is None
        assert model.step(tgt_in[:, 0], state)[1].input_feed is None
        return
    assert torch.equal(state.input_feed, torch.zeros(3, 16))  # h~_0 = 0
    pre_output, _ = model.decoder.step(tgt_in[:, 0], state)
    _, after = model.step(tgt_in[:, 0], state)
    torch.testing.assert_close(after.input_feed, pre_output)  # h~_1 (no dropout in eval)
