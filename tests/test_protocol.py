"""The model and decoder-state protocols (seqattn/models/protocol.py) and `index_rows`."""

from __future__ import annotations

import pytest
import torch

from seqattn.models import build_model
from seqattn.models.protocol import DecoderState, index_rows
from tests.test_models import TINY_TRANSFORMER, VOCAB, make_inputs, tiny


@pytest.mark.parametrize("kind", ["seq2seq", "bahdanau", "luong", "transformer"])
def test_every_kinds_state_is_a_decoder_state_through_a_search(kind):
    torch.manual_seed(0)
    model = build_model(tiny(kind=kind, transformer=TINY_TRANSFORMER), VOCAB, VOCAB).eval()
    src, lengths, tgt_in = make_inputs()
    state = model.encode(src, lengths)
    assert isinstance(state, DecoderState)
    _, state = model.step(tgt_in[:, 0], state)
    assert isinstance(state, DecoderState)
    beams = state.select(torch.tensor([0, 0, 1, 1, 2, 2]))  # two beams per sentence
    assert isinstance(beams, DecoderState)
    reordered = beams.reorder_beams(torch.tensor([1, 0, 2, 2, 5, 4]))
    log_probs, after = model.step(tgt_in[:, 1].repeat_interleave(2), reordered)
    assert log_probs.shape == (6, VOCAB) and isinstance(after, DecoderState)
    assert (after.attention is None) == (not model.has_attention)


def test_a_thing_without_select_and_reorder_beams_is_not_a_decoder_state():
    class HalfState:
        attention = None

        def select(self, index):
            return self

    assert not isinstance(HalfState(), DecoderState)
    assert not isinstance(torch.zeros(2), DecoderState)


def test_index_rows_of_tensors_lists_tuples_and_none():
    x, y = torch.arange(6).view(3, 2), torch.arange(3)
    index = torch.tensor([2, 0])
    assert index_rows(None, index) is None
    assert torch.equal(index_rows(x, index), torch.tensor([[4, 5], [0, 1]]))
    per_layer = index_rows([x, y], index)
    assert isinstance(per_layer, list) and torch.equal(per_layer[1], torch.tensor([2, 0]))
    pair = index_rows((x, y), index)
    assert isinstance(pair, tuple) and torch.equal(pair[0], x[index])
    assert index_rows([], index) == []
