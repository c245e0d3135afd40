"""The recurrent parts (seqattn/models/rnn.py): the frozen token table of the decoder cell stack."""

from __future__ import annotations

import pytest
import torch

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
