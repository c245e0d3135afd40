"""The Transformer: its attention against eq. (1), masks, the key/value cache, positions."""

from __future__ import annotations

import math

import pytest
import torch

from seqattn.config import model_config
from seqattn.models import build_model
from seqattn.models.transformer import MultiHeadAttention, scaled_dot_product_attention, sinusoids
from seqattn.tokenizer import BOS_ID, EOS_ID, PAD_ID

VOCAB = 29
LAYERS = {"encoder_layers": 2, "decoder_layers": 2, "heads": 2, "ff_size": 24,
          "attention_dropout": 0.0}


def tiny(**transformer):
    cfg = model_config(kind="transformer", embedding_size=16, dropout=0.0,
                       transformer={**LAYERS, **transformer})
    torch.manual_seed(0)
    return build_model(cfg, VOCAB, VOCAB).eval()


def inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(4, VOCAB, (3, 7), generator=g)
    lengths = torch.tensor([7, 3, 5])
    for row, n in enumerate(lengths.tolist()):
        src[row, n - 1], src[row, n:] = EOS_ID, PAD_ID
    tgt = torch.randint(4, VOCAB, (3, 6), generator=g)
    tgt[:, 0] = BOS_ID
    return src, lengths, tgt


@pytest.mark.parametrize("causal", [False, True])
def test_the_fused_kernel_equals_equation_one(causal):
    """The fast path (torch's scaled_dot_product_attention) and the written-out softmax agree."""
    torch.manual_seed(0)
    attention = MultiHeadAttention(16, 4, dropout=0.0).eval()
    x, memory = torch.randn(2, 5, 16), torch.randn(2, 5, 16)
    mask = None if causal else torch.tensor([[True] * 5, [True, True, False, False, False]])
    key, value = attention.keys_values(memory)
    mask4 = None if mask is None else mask[:, None, None, :]
    fast, none = attention(x, key, value, mask4, causal=causal)
    if causal:
        mask4 = torch.ones(5, 5, dtype=torch.bool).tril()[None, None]
    slow, weights = attention(x, key, value, mask4, need_weights=True)
    assert none is None and weights.shape == (2, 4, 5, 5)
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-4)


def test_equation_one_by_hand():
    q, k, v = torch.randn(1, 1, 2, 4), torch.randn(1, 1, 3, 4), torch.randn(1, 1, 3, 4)
    context, weights = scaled_dot_product_attention(q, k, v, None)
    expected = torch.softmax(q[0, 0] @ k[0, 0].T / 2.0, dim=-1)  # sqrt(d_k) = 2
    torch.testing.assert_close(weights[0, 0], expected)
    torch.testing.assert_close(context[0, 0], expected @ v[0, 0])


def test_cross_attention_of_every_layer_and_head_sums_to_one_and_skips_padding():
    model = tiny()
    src, lengths, tgt = inputs()
    _, attention = model.teacher_forced(src, lengths, tgt)  # [B, T, layers, heads, S]
    assert attention.shape == (3, 6, 2, 2, 7)
    torch.testing.assert_close(attention.sum(-1), torch.ones(3, 6, 2, 2))
    for row, n in enumerate(lengths.tolist()):
        assert torch.all(attention[row, ..., n:] == 0.0)


def test_padding_never_leaks():
    """Whatever sits in the padded positions of source and target changes no real output."""
    model = tiny()
    src, lengths, tgt = inputs()
    logits, _ = model.teacher_forced(src, lengths, tgt)
    noisy_src, noisy_tgt = src.clone(), tgt.clone()
    for row, n in enumerate(lengths.tolist()):
        noisy_src[row, n:] = torch.randint(4, VOCAB, (7 - n,))
    noisy_tgt[1, 4:] = torch.randint(4, VOCAB, (2,))  # row 1's target "ends" at 4
    noisy, _ = model.teacher_forced(noisy_src, lengths, noisy_tgt)
    torch.testing.assert_close(noisy[:, :4], logits[:, :4])  # causal: later tokens never look back
    torch.testing.assert_close(noisy[[0, 2]], logits[[0, 2]])


def test_the_cache_grows_by_one_token_per_step_and_keeps_the_source():
    model = tiny()
    src, lengths, tgt = inputs()
    state = model.encode(src, lengths)
    cross = state.cross_keys[0]
    for t in range(4):
        _, state = model.step(tgt[:, t], state)
        assert state.position == t + 1
        assert all(k.shape == (3, 2, t + 1, 8) for k in state.self_keys)  # [B, heads, t, d/heads]
        assert state.cross_keys[0] is cross  # computed once per source
    assert state.attention.shape == (3, 2, 2, 7)  # [B, layers, heads, S]
    moved = state.reorder_beams(torch.tensor([2, 2, 0]))
    assert moved.cross_keys[0] is cross and torch.equal(moved.self_keys[1][0], state.self_keys[1][2])


def test_sinusoids_are_the_papers():
    table = sinusoids(50, 8)
    pos, i = 7, 2
    assert table[pos, 2 * i].item() == pytest.approx(math.sin(pos / 10000 ** (2 * i / 8)), abs=1e-6)
    assert table[pos, 2 * i + 1].item() == pytest.approx(math.cos(pos / 10000 ** (2 * i / 8)), abs=1e-6)


def test_positions_beyond_the_table_extend_it():
    """Sinusoidal positions are a function, not a table: a long output is never cut short."""
    model = tiny(max_positions=4)
    src, lengths, tgt = inputs()
    state = model.encode(src, lengths)
    for t in range(6):
        log_probs, state = model.step(tgt[:, min(t, 5)], state)
    assert torch.isfinite(log_probs).all()


def test_post_norm_has_no_final_norm_and_pre_norm_has_one():
    assert tiny(norm="pre").encoder.final_norm is not None
    assert tiny(norm="post").encoder.final_norm is None
