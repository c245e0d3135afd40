"""Search: beam 1 == greedy, n-best order and endings, batch-composition invariance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqattn.config import model_config
from seqattn.models import build_model
from seqattn.search import beam_search, decode, greedy_search, length_penalty, max_output_lengths
from seqattn.tokenizer import EOS_ID

VOCAB = 20


TINY_TRANSFORMER = {"encoder_layers": 1, "decoder_layers": 2, "heads": 2, "ff_size": 32,
                    "attention_dropout": 0.0}


def trained_copy_model(kind: str):
    """A small model trained briefly to copy, so that searches make non-trivial choices."""
    torch.manual_seed(0)
    model = build_model(model_config(kind=kind, embedding_size=16, rnn={"hidden_size": 32}, dropout=0.0,
                                     transformer=TINY_TRANSFORMER), VOCAB, VOCAB)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    g = torch.Generator().manual_seed(0)
    for _ in range(60):
        body = torch.randint(4, VOCAB, (16, 4), generator=g)
        src = torch.cat([body, torch.full((16, 1), EOS_ID)], 1)
        tgt_in = torch.cat([torch.full((16, 1), 2), body], 1)
        tgt_out = torch.cat([body, torch.full((16, 1), EOS_ID)], 1)
        logits, _ = model.teacher_forced(src, torch.full((16,), 5), tgt_in)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), tgt_out.flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="module", params=["seq2seq", "bahdanau", "luong", "transformer"])
def model(request):
    return trained_copy_model(request.param)


def sources(n=9, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(4, VOCAB, size=rng.integers(1, 9)).astype(np.int32) for _ in range(n)]


def run(model, srcs, beam, batch_size=64, nbest=1, attention=True):
    return decode(model, srcs, beam, alpha=1.0, max_length_ratio=1.5, max_length_offset=3,
                  batch_size=batch_size, device=torch.device("cpu"), nbest=nbest,
                  return_attention=attention)


def test_beam_one_equals_greedy(model):
    srcs = sources()
    greedy = run(model, srcs, beam=1)
    from seqattn.data import collate

    batch = collate(srcs, [np.empty(0, np.int32)] * len(srcs), list(range(len(srcs))))
    limits = max_output_lengths(batch.src_lengths, 1.5, 3)
    beam1 = beam_search(model, batch.src, batch.src_lengths, 1, limits, alpha=1.0,
                        return_attention=True)
    for g, b in zip(greedy, beam1):
        assert g[0].tokens == b[0].tokens
        assert g[0].score == pytest.approx(b[0].score, abs=1e-4)
        if g[0].attention is not None:
            np.testing.assert_allclose(g[0].attention, b[0].attention, atol=1e-6)
    direct = greedy_search(model, batch.src, batch.src_lengths, limits, alpha=1.0)
    assert [d[0].tokens for d in direct] == [g[0].tokens for g in greedy]


def test_nbest_sorted_and_each_ends_in_eos_or_at_the_limit(model):
    srcs = sources(6, seed=1)
    results = run(model, srcs, beam=4, nbest=4)
    for src, hyps in zip(srcs, results):
        assert 1 <= len(hyps) <= 4
        scores = [h.score for h in hyps]
        assert scores == sorted(scores, reverse=True)
        limit = int(np.ceil((len(src) + 1) * 1.5)) + 3
        for h in hyps:
            assert h.ended or len(h.tokens) == limit
            assert EOS_ID not in h.tokens
            steps = len(h.tokens) + (1 if h.ended else 0)
            assert h.score == pytest.approx(h.log_prob / length_penalty(steps, 1.0))


@pytest.mark.parametrize("beam", [1, 3])
def test_output_does_not_depend_on_batch_composition(model, beam):
    srcs = sources(12, seed=2)
    together = run(model, srcs, beam=beam, batch_size=12)
    alone = [run(model, [s], beam=beam, batch_size=1)[0] for s in srcs]
    small = run(model, srcs, beam=beam, batch_size=5)
    for t, a, s in zip(together, alone, small):
        assert t[0].tokens == a[0].tokens == s[0].tokens
        assert t[0].score == pytest.approx(a[0].score, abs=1e-4)


def test_attention_of_chosen_hypotheses(model):
    srcs = sources(5, seed=3)
    for beam in (1, 3):
        for src, hyps in zip(srcs, run(model, srcs, beam=beam)):
            h = hyps[0]
            if not model.has_attention:
                assert h.attention is None
                continue
            steps = len(h.tokens) + (1 if h.ended else 0)
            assert h.attention.shape[0] == steps and h.attention.shape[-1] == len(src) + 1
            # [steps, S] (RNN) or [steps, layers, heads, S] (Transformer): every row sums to one
            np.testing.assert_allclose(h.attention.sum(axis=-1), 1.0, atol=1e-5)


def test_larger_beam_never_finds_a_worse_best_score_on_average(model):
    srcs = sources(10, seed=4)
    greedy = [h[0].score for h in run(model, srcs, beam=1)]
    beam5 = [h[0].score for h in run(model, srcs, beam=5)]
    assert sum(beam5) >= sum(greedy) - 1e-4
