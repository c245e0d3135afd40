"""Attention (seqattn/models/attention.py): each score's rows sum to one with zero weight on
padding, and the additive score is Bahdanau's formula."""

from __future__ import annotations

import pytest
import torch

from seqattn.models import build_model
from tests.test_models import VOCAB, make_inputs, tiny


@pytest.mark.parametrize("kind", ["bahdanau", "luong"])
@pytest.mark.parametrize("score", ["dot", "general", "concat"])
def test_attention_rows_sum_to_one_and_pads_get_zero(kind, score):
    if kind == "bahdanau" and score != "general":
        pytest.skip("bahdanau has one score")
    model = build_model(tiny(kind=kind, attention=dict(score=score)), VOCAB, VOCAB).eval()
    src, lengths, tgt_in = make_inputs()
    _, attention = model.teacher_forced(src, lengths, tgt_in)  # [B, T, S]
    torch.testing.assert_close(attention.sum(-1), torch.ones(3, 5))
    for row, n in enumerate(lengths.tolist()):
        assert torch.all(attention[row, :, n:] == 0.0)
        assert torch.all(attention[row, :, :n] > 0.0)


def test_additive_attention_weights_are_bahdanaus_formula():
    """softmax_j(v^T tanh(W s + U h_j)) over the real positions, however it is computed."""
    from seqattn.models.attention import AdditiveAttention

    torch.manual_seed(0)
    attention = AdditiveAttention(6, 8, 5)
    query, memory = torch.randn(3, 2, 6), torch.randn(3, 4, 8)
    mask = torch.tensor([[True] * 4, [True, True, True, False], [True, False, False, False]])
    context, weights = attention(query, attention.project_keys(memory), memory, mask)
    w_a, u_a, v_a = (attention.query_proj.weight, attention.key_proj.weight,
                     attention.energy.weight[0])
    for b in range(3):
        for t in range(2):
            energy = torch.stack([v_a @ torch.tanh(w_a @ query[b, t] + u_a @ memory[b, j])
                                  for j in range(4)])
            expected = torch.softmax(energy.masked_fill(~mask[b], float("-inf")), dim=0)
            torch.testing.assert_close(weights[b, t], expected)
            torch.testing.assert_close(context[b, t], expected @ memory[b])
