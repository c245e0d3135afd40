"""The recurrent parts (seqattn/models/rnn.py): the decoder state's row moves, the bidirectional
encoder's final states, the frozen token table of the decoder cell stack."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from seqattn.config import RNNConfig
from seqattn.models.protocol import DecoderState
from seqattn.models.rnn import RecurrentStack, RNNEncoder, RNNState
from seqattn.tokenizer import PAD_ID
from tests.test_search import VOCAB, trained_copy_model


@pytest.fixture(scope="module", params=["seq2seq", "bahdanau", "luong"])
def model(request):
    return trained_copy_model(request.param)


def test_a_frozen_token_table_gives_the_same_steps(model):
    import copy

    if not hasattr(model.decoder, "freeze_token_table"):
        pytest.skip("only RNN decoders project token embeddings to gates")
    frozen = copy.deepcopy(model)
    frozen.decoder.freeze_token_table()
    src = torch.randint(4, VOCAB, (5, 6))
    lengths = torch.full((5,), 6)
    prev = torch.randint(4, VOCAB, (5,))
    with torch.inference_mode():
        exact, _ = model.step(prev, model.encode(src, lengths))
        looked_up, _ = frozen.step(prev, frozen.encode(src, lengths))
    torch.testing.assert_close(looked_up, exact)
    frozen.train()  # teacher forcing never uses the table: it has no token ids to look up
    batch_logits, _ = frozen.teacher_forced(src, lengths, src)
    assert batch_logits.requires_grad


def rnn_state(batch=3, source=4, hidden=5, layers=2):
    g = torch.Generator().manual_seed(0)

    def rand(*shape):
        return torch.randn(*shape, generator=g)

    return RNNState(hidden=[rand(batch, hidden) for _ in range(layers)],
                    cell=[rand(batch, hidden) for _ in range(layers)],
                    memory=rand(batch, source, hidden), keys=rand(batch, source, 7),
                    src_mask=torch.ones(batch, source, dtype=torch.bool),
                    input_feed=rand(batch, hidden), attention=rand(batch, source).softmax(-1))


def test_select_takes_the_rows_of_every_tensor():
    state = rnn_state()
    index = torch.tensor([2, 2, 0])
    picked = state.select(index)
    for name in ("memory", "keys", "src_mask", "input_feed", "attention"):
        assert torch.equal(getattr(picked, name), getattr(state, name)[index]), name
    for layer in range(2):
        assert torch.equal(picked.hidden[layer], state.hidden[layer][index])
        assert torch.equal(picked.cell[layer], state.cell[layer][index])
    assert picked.fixed_context is None
    assert isinstance(picked, DecoderState)


def test_reorder_beams_moves_the_target_side_and_keeps_the_source_side():
    state = rnn_state()
    index = torch.tensor([1, 0, 0])
    moved = state.reorder_beams(index)
    for name in RNNState.SOURCE_SIDE:
        assert getattr(moved, name) is getattr(state, name), name  # the same objects, not copies
    assert torch.equal(moved.input_feed, state.input_feed[index])
    assert torch.equal(moved.attention, state.attention[index])
    assert torch.equal(moved.hidden[1], state.hidden[1][index])
    assert torch.equal(moved.cell[0], state.cell[0][index])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_bidirectional_encoders_final_states_join_both_directions(cell):
    torch.manual_seed(0)
    hidden = 8
    embedding = nn.Embedding(VOCAB, 6, padding_idx=PAD_ID)
    encoder = RNNEncoder(embedding, RNNConfig(cell=cell, hidden_size=hidden, num_layers=2,
                                              bidirectional=True), dropout=0.0).eval()
    src = torch.randint(4, VOCAB, (3, 6))
    lengths = torch.tensor([6, 3, 5])
    for row, n in enumerate(lengths.tolist()):
        src[row, n:] = PAD_ID
    encoded = encoder(src, lengths)
    assert encoded.memory.shape == (3, 6, hidden)
    assert len(encoded.final_hidden) == 2 and encoded.final_hidden[-1].shape == (3, hidden)
    assert (encoded.final_cell is None) == (cell == "gru")
    top = encoded.final_hidden[-1]
    for row, n in enumerate(lengths.tolist()):
        # forward half: the state after the last real token; backward half: after reading back to 0
        torch.testing.assert_close(top[row, : hidden // 2], encoded.memory[row, n - 1, : hidden // 2])
        torch.testing.assert_close(top[row, hidden // 2 :], encoded.memory[row, 0, hidden // 2 :])
        assert torch.all(encoded.memory[row, n:] == 0)  # padding positions hold no state
    assert torch.equal(encoded.src_mask, src != PAD_ID)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_the_cell_stack_is_torchs_textbook_cell(cell):
    """One layer, fed its token gates and an extra input: torch's LSTMCell / GRUCell on [x; extra]."""
    torch.manual_seed(0)
    stack = RecurrentStack(cell, token_size=5, extra_size=3, hidden_size=4, num_layers=1, dropout=0.0)
    reference = (nn.LSTMCell if cell == "lstm" else nn.GRUCell)(8, 4)
    with torch.no_grad():
        reference.weight_ih.copy_(torch.cat([stack.token_proj.weight, stack.extra_proj.weight], dim=1))
        reference.bias_ih.copy_(stack.token_proj.bias)
        reference.weight_hh.copy_(stack.hidden_proj[0].weight)
        reference.bias_hh.copy_(stack.hidden_proj[0].bias)
    x, extra, h, c = torch.randn(2, 5), torch.randn(2, 3), torch.randn(2, 4), torch.randn(2, 4)
    hidden, cells = stack(stack.project_tokens(x), extra, [h], [c] if cell == "lstm" else None)
    if cell == "lstm":
        expected_h, expected_c = reference(torch.cat([x, extra], -1), (h, c))
        torch.testing.assert_close(cells[0], expected_c)
    else:
        expected_h = reference(torch.cat([x, extra], -1), h)
        assert cells is None
    torch.testing.assert_close(hidden[0], expected_h)
