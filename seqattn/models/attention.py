"""Attention: score every encoder state against a decoder query, softmax, weighted sum.

All functions take a query with a time axis, `[B, T, Hq]`: T = 1 during step-by-step decoding,
T = target length when the queries of all steps are known in advance (teacher forcing without
input feeding), so one implementation serves both.
"""

from __future__ import annotations

import torch
from torch import nn


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over source positions; pad positions get exactly zero weight.

    scores: [B, T, S]; mask: [B, S], True on real source tokens.
    """
    scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
    return torch.softmax(scores, dim=-1)  # [B, T, S]


def attend(weights: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
    """Context vectors c = sum_j alpha_j h_j (Bahdanau et al. 2015, eq. 5): [B, T, S] x [B, S, H]."""
    return torch.bmm(weights, memory)  # [B, T, H]


class AdditiveAttention(nn.Module):
    """Additive attention, Bahdanau et al. 2015, eq. (6) and appendix A.1.2:

    energy e_ij = v_a^T tanh(W_a s + U_a h_j). `U_a h_j` does not depend on the decoder, so
    `project_keys` computes it once per batch instead of once per step.

    Computed through the sigmoid: tanh(x) = 2 sigmoid(2x) - 1, so e_ij = 2 v_a^T sigmoid(2 W_a s +
    2 U_a h_j) - sum(v_a), and the constant sum(v_a) cancels in the softmax. Same weights, but
    torch's CPU sigmoid is about 3x faster than its tanh, and this [B, T, S, A] tensor is the
    largest of a decoder step. The factor 2 is folded into the keys (once per batch).
    """

    def __init__(self, query_size: int, key_size: int, attention_size: int) -> None:
        super().__init__()
        self.query_proj = nn.Linear(query_size, attention_size, bias=False)  # W_a
        self.key_proj = nn.Linear(key_size, attention_size, bias=False)  # U_a
        self.energy = nn.Linear(attention_size, 1, bias=False)  # v_a

    def project_keys(self, memory: torch.Tensor) -> torch.Tensor:
        return 2.0 * self.key_proj(memory)  # [B, S, A]: 2 U_a h_j

    def forward(self, query: torch.Tensor, keys: torch.Tensor, memory: torch.Tensor,
                mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        projected = 2.0 * self.query_proj(query)  # [B, T, A]: 2 W_a s
        # sigmoid in place on the fresh sum: the largest tensor of a step is allocated once.
        hidden = (projected[:, :, None, :] + keys[:, None, :, :]).sigmoid_()  # [B, T, S, A]
        energy = 2.0 * self.energy(hidden).squeeze(-1)  # e_ij + sum(v_a): [B, T, S]
        weights = masked_softmax(energy, mask)  # alignment: [B, T, S]
        return attend(weights, memory), weights


class LuongAttention(nn.Module):
    """Global attention, Luong et al. 2015, eq. (8): score(h_t, h_s) is

    dot: h_t^T h_s;  general: h_t^T W_a h_s;  concat: v_a^T tanh(W_a [h_t; h_s]).
    For `general`, `W_a h_s` is computed once per batch (`project_keys`).
    """

    def __init__(self, score: str, query_size: int, key_size: int, attention_size: int) -> None:
        super().__init__()
        if score not in ("dot", "general", "concat"):
            raise ValueError(f"unknown Luong score '{score}'")
        if score == "dot" and query_size != key_size:
            raise ValueError("dot attention needs equal query and key sizes")
        self.score = score
        self.key_proj = nn.Linear(key_size, query_size, bias=False) if score == "general" else None
        self.concat = (AdditiveAttention(query_size, key_size, attention_size)
                       if score == "concat" else None)

    def project_keys(self, memory: torch.Tensor) -> torch.Tensor:
        if self.concat is not None:
            return self.concat.project_keys(memory)  # [B, S, A]
        if self.key_proj is not None:
            return self.key_proj(memory)  # [B, S, Hq]
        return memory

    def forward(self, query: torch.Tensor, keys: torch.Tensor, memory: torch.Tensor,
                mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.concat is not None:
            return self.concat(query, keys, memory, mask)
        scores = torch.bmm(query, keys.transpose(1, 2))  # [B, T, S]
        weights = masked_softmax(scores, mask)
        return attend(weights, memory), weights
