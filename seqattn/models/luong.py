"""Luong et al. 2015: global attention scored from the current decoder state.

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
from seqattn.models.base import DecoderState, EncoderDecoder, Generator
from seqattn.models.cells import RecurrentStack


class Luong(EncoderDecoder):
    def __init__(self, cfg: ModelConfig, src_vocab_size: int, tgt_vocab_size: int) -> None:
        super().__init__(cfg, src_vocab_size, tgt_vocab_size)
        hidden, emb = cfg.hidden_size, cfg.embedding_size
        feed = hidden if cfg.input_feeding else 0
        self.rnn = RecurrentStack(cfg.cell, emb, feed, hidden, cfg.num_layers, cfg.dropout)
        self.attention = LuongAttention(cfg.attention_score, hidden, hidden,
                                        cfg.attention_size or hidden)
        self.combine = nn.Linear(2 * hidden, hidden, bias=False)  # W_c
        self.generator = Generator(hidden, tgt_vocab_size, self.tgt_embed if cfg.tie_embeddings else None)

    @property
    def has_attention(self) -> bool:
        return True

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor) -> DecoderState:
        state = self.encode_source(src, src_lengths)
        state.keys = self.attention.project_keys(state.memory)  # [B, S, A]
        if self.cfg.input_feeding:
            state.feed = state.memory.new_zeros(src.size(0), self.cfg.hidden_size)  # h~_0 = 0
        return state

    def _attentional(self, top: torch.Tensor, state: DecoderState
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """top: [B, T, H] decoder states -> h~ [B, T, H], weights [B, T, S]."""
        context, weights = self.attention(top, state.keys, state.memory, state.src_mask)
        return torch.tanh(self.combine(torch.cat([context, top], dim=-1))), weights

    def step(self, prev_tokens: torch.Tensor, state: DecoderState
             ) -> tuple[torch.Tensor, DecoderState]:
        embedded = self.tgt_embed(prev_tokens)  # [B, E]
        gates = self.rnn.project_tokens(embedded, prev_tokens)  # [B, G]
        hidden, cell = self.rnn(gates, state.feed, state.hidden, state.cell)
        attentional, weights = self._attentional(hidden[-1][:, None, :], state)  # [B, 1, H]
        attentional = attentional[:, 0]
        new_state = DecoderState(hidden=hidden, cell=cell, memory=state.memory, keys=state.keys,
                                 src_mask=state.src_mask,
                                 feed=attentional if self.cfg.input_feeding else None,
                                 attention=weights[:, 0])
        logits = self.generator(self.dropout(attentional))  # [B, V]
        return torch.log_softmax(logits.float(), dim=-1), new_state

    def teacher_forced(self, src, src_lengths, tgt_in):
        state = self.encode(src, src_lengths)
        embedded = self.dropout(self.tgt_embed(tgt_in))  # [B, T, E]
        token_gates = self.rnn.project_tokens(embedded)  # [B, T, G], all steps at once
        hidden, cell, feed = state.hidden, state.cell, state.feed
        if self.cfg.input_feeding:  # h~_{t-1} enters step t: attention must run inside the loop
            outputs, weights = [], []
            for gates in token_gates.unbind(1):  # unbind: one backward copy, not one per step
                hidden, cell = self.rnn(gates, feed, hidden, cell)
                attentional, step_weights = self._attentional(hidden[-1][:, None, :], state)
                feed = attentional[:, 0]
                outputs.append(attentional)
                weights.append(step_weights)
            attentional, weights = torch.cat(outputs, dim=1), torch.cat(weights, dim=1)
        else:  # only the recurrence is sequential; attention runs once over all steps
            tops = []
            for gates in token_gates.unbind(1):
                hidden, cell = self.rnn(gates, None, hidden, cell)
                tops.append(hidden[-1])
            attentional, weights = self._attentional(torch.stack(tops, dim=1), state)
        return self.generator(self.dropout(attentional)), weights  # [B, T, V], [B, T, S]
