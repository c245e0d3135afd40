"""The output layer (seqattn/models/output.py): tied or untied weights, and its two hooks."""

from __future__ import annotations

import torch
from torch import nn

from seqattn.models.output import Generator
from seqattn.tokenizer import PAD_ID

VOCAB, EMB, HIDDEN = 11, 6, 9


def test_untied_layer_is_one_linear_product():
    torch.manual_seed(0)
    generator = Generator(HIDDEN, VOCAB, tied=None)
    weight, bias = generator.output_weights()
    assert weight.shape == (VOCAB, HIDDEN) and bias.shape == (VOCAB,)
    x = torch.randn(2, 3, HIDDEN)
    torch.testing.assert_close(generator(x), x @ weight.T + bias)


def test_tied_layer_reads_the_embedding_matrix():
    torch.manual_seed(0)
    embedding = nn.Embedding(VOCAB, EMB, padding_idx=PAD_ID)
    generator = Generator(HIDDEN, VOCAB, tied=embedding)
    weight, bias = generator.output_weights()
    assert weight is embedding.weight
    assert generator.proj.in_features == HIDDEN and generator.proj.out_features == EMB  # to EMB first
    assert torch.all(embedding.weight[PAD_ID] == 0)
    assert embedding.weight.std().item() < 2 * EMB ** -0.5  # rescaled from N(0, 1): logits of order one
    x = torch.randn(4, HIDDEN)
    torch.testing.assert_close(generator(x), generator.proj(x) @ weight.T + bias)
    same_size = Generator(EMB, VOCAB, tied=nn.Embedding(VOCAB, EMB))
    assert same_size.proj is None


def test_deferred_returns_the_vectors_the_vocabulary_matrix_multiplies():
    torch.manual_seed(0)
    x = torch.randn(2, 3, HIDDEN)
    untied = Generator(HIDDEN, VOCAB, tied=None)
    tied = Generator(HIDDEN, VOCAB, tied=nn.Embedding(VOCAB, EMB))
    for generator in (untied, tied):
        logits = generator(x)
        with generator.deferred():
            vectors = generator(x)
        weight, bias = generator.output_weights()
        assert vectors.shape[-1] == weight.shape[1]
        torch.testing.assert_close(vectors @ weight.T + bias, logits)
        torch.testing.assert_close(generator(x), logits)  # the block ended: logits again


def test_restricted_to_gives_logits_over_the_ids_in_their_order():
    torch.manual_seed(0)
    x = torch.randn(5, HIDDEN)
    ids = torch.tensor([7, 3, 10, 1])
    for generator in (Generator(HIDDEN, VOCAB, tied=None),
                      Generator(HIDDEN, VOCAB, tied=nn.Embedding(VOCAB, EMB))):
        full = generator(x)
        with generator.restricted_to(ids):
            restricted = generator(x)
        assert restricted.shape == (5, 4)
        torch.testing.assert_close(restricted, full[:, ids])
        assert generator.subset is None and generator(x).shape == (5, VOCAB)
