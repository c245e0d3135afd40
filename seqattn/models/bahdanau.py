"""Bahdanau et al. 2015: a decoder with additive attention scored from its previous state.

At step i: e_ij = v^T tanh(W s_{i-1} + U h_j), alpha_i = softmax(e_i), c_i = sum_j alpha_ij h_j,
s_i = f(s_{i-1}, y_{i-1}, c_i), and the output layer reads (s_i, y_{i-1}, c_i) (their eq. 4 and
appendix A.2.2; a tanh readout stands in for their maxout).
"""

from __future__ import annotations

import torch
from torch import nn

from seqattn.config import ModelConfig
from seqattn.models.attention import AdditiveAttention
from seqattn.models.protocol import EncoderOutput
from seqattn.models.rnn import Bridge, RecurrentStack, RNNState


class BahdanauDecoder(nn.Module):
    has_attention = True

    def __init__(self, embedding: nn.Embedding, cfg: ModelConfig) -> None:
        super().__init__()
        hidden, emb = cfg.rnn.hidden_size, cfg.embedding_size
        self.embedding = embedding
        self.bridge = Bridge(hidden, cfg.rnn.cell == "lstm")
        self.attention = AdditiveAttention(hidden, hidden, cfg.attention.size or hidden)
        self.rnn = RecurrentStack(cfg.rnn.cell, emb, hidden, hidden, cfg.rnn.num_layers,
                                  cfg.dropout)
        self.readout = nn.Linear(2 * hidden + emb, emb)
        self.dropout = nn.Dropout(cfg.dropout)
        self.output_size = emb

    def init_state(self, encoded: EncoderOutput) -> RNNState:
        hidden, cell = self.bridge(encoded)
        keys = self.attention.project_keys(encoded.memory)  # U h_j once per batch: [B, S, A]
        return RNNState(hidden=hidden, cell=cell, memory=encoded.memory, keys=keys,
                        src_mask=encoded.src_mask)

    def freeze_token_table(self) -> None:
        self.rnn.freeze_token_table(self.embedding)

    def _advance(self, token_gates: torch.Tensor, state: RNNState
                 ) -> tuple[RNNState, torch.Tensor]:
        """One decoder step; returns the new state and the context c_i [B, H]."""
        query = state.hidden[-1][:, None, :]  # s_{i-1}: [B, 1, H]
        context, weights = self.attention(query, state.keys, state.memory, state.src_mask)
        context = context[:, 0]  # [B, H]
        hidden, cell = self.rnn(token_gates, context, state.hidden, state.cell)
        new_state = RNNState(hidden=hidden, cell=cell, memory=state.memory, keys=state.keys,
                             src_mask=state.src_mask, attention=weights[:, 0])
        return new_state, context

    def _pre_output(self, hidden, context, embedded) -> torch.Tensor:
        readout = torch.tanh(self.readout(torch.cat([hidden, context, embedded], dim=-1)))
        return self.dropout(readout)

    def step(self, prev_tokens: torch.Tensor, state: RNNState) -> tuple[torch.Tensor, RNNState]:
        embedded = self.embedding(prev_tokens)  # [B, E]
        state, context = self._advance(self.rnn.project_tokens(embedded, prev_tokens), state)
        return self._pre_output(state.hidden[-1], context, embedded), state  # [B, E]

    def forward(self, tgt_in: torch.Tensor, state: RNNState) -> tuple[torch.Tensor, torch.Tensor]:
        embedded = self.dropout(self.embedding(tgt_in))  # [B, T, E]
        token_gates = self.rnn.project_tokens(embedded)  # [B, T, G], all steps at once
        hiddens, contexts, weights = [], [], []
        for gates in token_gates.unbind(1):  # unbind: one backward copy, not one per step
            state, context = self._advance(gates, state)
            hiddens.append(state.hidden[-1])
            contexts.append(context)
            weights.append(state.attention)
        # The readout runs once over all steps: [B, T, E].
        out = self._pre_output(torch.stack(hiddens, 1), torch.stack(contexts, 1), embedded)
        return out, torch.stack(weights, dim=1)  # attention: [B, T, S]
