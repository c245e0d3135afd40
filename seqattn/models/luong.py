"""Luong et al. 2015: a decoder with global attention scored from its current state.

h_t = f(h_{t-1}, [y_{t-1}; h~_{t-1}])   (input feeding, their section 3.3; optional)
a_t = softmax(score(h_t, h_s))           (eq. 7, score: dot / general / concat, eq. 8)
c_t = sum_s a_t(s) h_s
h~_t = tanh(W_c [c_t; h_t])              (eq. 5)
p(y_t) = softmax(W_s h~_t)               (eq. 6)
"""

from __future__ import annotations

import torch
from torch import nn

from seqattn.config import ModelConfig
from seqattn.models.attention import LuongAttention
from seqattn.models.protocol import EncoderOutput
from seqattn.models.rnn import Bridge, RecurrentStack, RNNState


class LuongDecoder(nn.Module):
    has_attention = True

    def __init__(self, embedding: nn.Embedding, cfg: ModelConfig) -> None:
        super().__init__()
        hidden, emb, att = cfg.rnn.hidden_size, cfg.embedding_size, cfg.attention
        self.input_feeding = att.input_feeding
        self.embedding = embedding
        self.bridge = Bridge(hidden, cfg.rnn.cell == "lstm")
        self.rnn = RecurrentStack(cfg.rnn.cell, emb, hidden if att.input_feeding else 0, hidden,
                                  cfg.rnn.num_layers, cfg.dropout)
        self.attention = LuongAttention(att.score, hidden, hidden, att.size or hidden)
        self.combine = nn.Linear(2 * hidden, hidden, bias=False)  # W_c
        self.dropout = nn.Dropout(cfg.dropout)
        self.output_size = hidden

    def init_state(self, encoded: EncoderOutput) -> RNNState:
        hidden, cell = self.bridge(encoded)
        feed = None
        if self.input_feeding:  # h~_0 = 0
            feed = encoded.memory.new_zeros(encoded.memory.size(0), hidden[-1].size(-1))
        return RNNState(hidden=hidden, cell=cell, memory=encoded.memory,
                        keys=self.attention.project_keys(encoded.memory),  # [B, S, A]
                        src_mask=encoded.src_mask, input_feed=feed)

    def freeze_token_table(self) -> None:
        self.rnn.freeze_token_table(self.embedding)

    def _attentional(self, top: torch.Tensor, state: RNNState
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """top: [B, T, H] decoder states -> h~ [B, T, H], weights [B, T, S]."""
        context, weights = self.attention(top, state.keys, state.memory, state.src_mask)
        return torch.tanh(self.combine(torch.cat([context, top], dim=-1))), weights

    def step(self, prev_tokens: torch.Tensor, state: RNNState) -> tuple[torch.Tensor, RNNState]:
        embedded = self.embedding(prev_tokens)  # [B, E]
        gates = self.rnn.project_tokens(embedded, prev_tokens)  # [B, G]
        hidden, cell = self.rnn(gates, state.input_feed, state.hidden, state.cell)
        attentional, weights = self._attentional(hidden[-1][:, None, :], state)  # [B, 1, H]
        attentional = attentional[:, 0]
        new_state = RNNState(hidden=hidden, cell=cell, memory=state.memory, keys=state.keys,
                             src_mask=state.src_mask,
                             input_feed=attentional if self.input_feeding else None,
                             attention=weights[:, 0])
        return self.dropout(attentional), new_state  # [B, H]

    def forward(self, tgt_in: torch.Tensor, state: RNNState) -> tuple[torch.Tensor, torch.Tensor]:
        embedded = self.dropout(self.embedding(tgt_in))  # [B, T, E]
        token_gates = self.rnn.project_tokens(embedded)  # [B, T, G], all steps at once
        if self.input_feeding:  # h~_{t-1} enters step t: attention must run inside the loop
            attentional, weights = self._fed_loop(token_gates, state)
        else:  # only the recurrence is sequential; attention runs once over all steps
            hidden, cell, tops = state.hidden, state.cell, []
            for gates in token_gates.unbind(1):  # unbind: one backward copy, not one per step
                hidden, cell = self.rnn(gates, None, hidden, cell)
                tops.append(hidden[-1])
            attentional, weights = self._attentional(torch.stack(tops, dim=1), state)
        return self.dropout(attentional), weights  # [B, T, H], [B, T, S]

    def _fed_loop(self, token_gates: torch.Tensor, state: RNNState
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        hidden, cell, feed = state.hidden, state.cell, state.input_feed
        outputs, weights = [], []
        for gates in token_gates.unbind(1):
            hidden, cell = self.rnn(gates, feed, hidden, cell)
            attentional, step_weights = self._attentional(hidden[-1][:, None, :], state)
            feed = attentional[:, 0]
            outputs.append(attentional)
            weights.append(step_weights)
        return torch.cat(outputs, dim=1), torch.cat(weights, dim=1)
