"""The encoder-decoder assembled from parts (seqattn/models/encoder_decoder.py): embeddings."""

from __future__ import annotations

from seqattn.models import build_model
from tests.test_models import VOCAB, tiny


def test_tied_and_shared_embeddings_share_parameters():
    model = build_model(tiny(kind="luong", tie_embeddings=True, share_embeddings=True), VOCAB, VOCAB)
    assert model.src_embed.weight is model.tgt_embed.weight
    assert model.generator.tied.weight is model.tgt_embed.weight
    untied = build_model(tiny(kind="luong"), VOCAB, VOCAB)
    assert model.num_parameters() < untied.num_parameters()
