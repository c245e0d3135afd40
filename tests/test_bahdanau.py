"""The Bahdanau decoder (seqattn/models/bahdanau.py): attention scored from the previous state."""

from __future__ import annotations

import torch

from seqattn.models import build_model
from tests.test_models import VOCAB, make_inputs, tiny


def test_attention_at_step_i_is_scored_from_s_i_minus_1_alone():
    """alpha_i depends on s_{i-1}, not on the token y_{i-1} fed at step i (their eq. 6)."""
    torch.manual_seed(0)
    model = build_model(tiny(kind="bahdanau"), VOCAB, VOCAB).eval()
    src, lengths, _ = make_inputs()
    state = model.encode(src, lengths)
    _, after_a = model.step(torch.full((3,), 5), state)
    _, after_b = model.step(torch.full((3,), 9), state)
    torch.testing.assert_close(after_a.attention, after_b.attention)
    _, expected = model.decoder.attention(state.hidden[-1][:, None, :], state.keys, state.memory,
                                          state.src_mask)
    torch.testing.assert_close(after_a.attention, expected[:, 0])
    assert not torch.equal(after_a.hidden[-1], after_b.hidden[-1])  # the token enters s_i


def test_the_source_side_is_carried_unchanged_from_step_to_step():
    torch.manual_seed(0)
    model = build_model(tiny(kind="bahdanau"), VOCAB, VOCAB).eval()
    src, lengths, tgt_in = make_inputs()
    state = model.encode(src, lengths)
    memory, keys = state.memory, state.keys
    for t in range(3):
        _, state = model.step(tgt_in[:, t], state)
    assert state.memory is memory and state.keys is keys  # U h_j computed once per batch
