"""The encoder-decoder assembled from parts (seqattn/models/encoder_decoder.py): its embeddings,
shared or tied, and how its parts meet."""

from __future__ import annotations

import pytest
import torch

from seqattn.data import Batch
from seqattn.models import build_model
from seqattn.models.encoder_decoder import make_embeddings
from seqattn.tokenizer import PAD_ID
from tests.test_models import VOCAB, make_inputs, tiny


def test_tied_and_shared_embeddings_share_parameters():
    model = build_model(tiny(kind="luong", tie_embeddings=True, share_embeddings=True), VOCAB, VOCAB)
    assert model.src_embed.weight is model.tgt_embed.weight
    assert model.generator.tied.weight is model.tgt_embed.weight
    untied = build_model(tiny(kind="luong"), VOCAB, VOCAB)
    assert model.num_parameters() < untied.num_parameters()


def test_make_embeddings_shares_one_matrix_when_asked():
    src, tgt = make_embeddings(VOCAB, VOCAB, 8, shared=True)
    assert src is tgt and src.num_embeddings == VOCAB and src.padding_idx == PAD_ID
    src, tgt = make_embeddings(VOCAB, VOCAB + 5, 8, shared=False)
    assert src is not tgt
    assert (src.num_embeddings, tgt.num_embeddings) == (VOCAB, VOCAB + 5)
    assert src.padding_idx == tgt.padding_idx == PAD_ID


def test_shared_embeddings_refuse_two_vocabulary_sizes():
    with pytest.raises(ValueError, match="joint vocabulary"):
        make_embeddings(VOCAB, VOCAB + 1, 8, shared=True)


def test_the_parts_meet_in_step_and_forward():
    """step's log-probabilities are float32 and normalised; forward(batch) is teacher_forced's logits."""
    torch.manual_seed(0)
    model = build_model(tiny(kind="bahdanau"), VOCAB, VOCAB).eval()
    src, lengths, tgt_in = make_inputs()
    log_probs, _ = model.step(tgt_in[:, 0], model.encode(src, lengths))
    assert log_probs.dtype == torch.float32
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(3))
    batch = Batch(src=src, src_lengths=lengths, tgt_in=tgt_in, tgt_out=tgt_in, indices=torch.arange(3))
    torch.testing.assert_close(model(batch), model.teacher_forced(src, lengths, tgt_in)[0])
    assert model.num_parameters() == sum(p.numel() for p in model.parameters())
    assert model.has_attention and not build_model(tiny(kind="seq2seq"), VOCAB, VOCAB).has_attention
