"""Bahdanau et al. 2015: additive attention scored from the previous decoder state.

At step i: e_ij = v^T tanh(W s_{i-1} + U h_j), alpha_i = softmax(e_i), c_i = sum_j alpha_ij h_j,
s_i = f(s_{i-1}, y_{i-1}, c_i), and the output layer reads (s_i, y_{i-1}, c_i) (their eq. 4 and
appendix A.2.2; a tanh readout stands in for their maxout).
"""

from __future__ import annotations

import torch
from torch import nn

from seqattn.config import ModelConfig
from seqattn.models.attention import AdditiveAttention
from seqattn.models.base import DecoderState, EncoderDecoder, Generator
from seqattn.models.cells import RecurrentStack


class Bahdanau(EncoderDecoder):
    def __init__(self, cfg: ModelConfig, src_vocab_size: int, tgt_vocab_size: int) -> None:
        super().__init__(cfg, src_vocab_size, tgt_vocab_size)
        hidden, emb = cfg.hidden_size, cfg.embedding_size
        self.attention = AdditiveAttention(hidden, hidden, cfg.attention_size or hidden)
        self.rnn = RecurrentStack(cfg.cell, emb, hidden, hidden, cfg.num_layers, cfg.dropout)
        self.readout = nn.Linear(2 * hidden + emb, emb)
        self.generator = Generator(emb, tgt_vocab_size, self.tgt_embed if cfg.tie_embeddings else None)

    @property
    def has_attention(self) -> bool:
        return True

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor) -> DecoderState:
        state = self.encode_source(src, src_lengths)
        state.keys = self.attention.project_keys(state.memory)  # U h_j once per batch: [B, S, A]
        return state

    def _advance(self, token_gates: torch.Tensor, state: DecoderState
                 ) -> tuple[DecoderState, torch.Tensor]:
        """One decoder step; returns the new state and the context c_i [B, H]."""
        query = state.hidden[-1][:, None, :]  # s_{i-1}: [B, 1, H]
        context, weights = self.attention(query, state.keys, state.memory, state.src_mask)
        context = context[:, 0]  # [B, H]
        hidden, cell = self.rnn(token_gates, context, state.hidden, state.cell)
        new_state = DecoderState(hidden=hidden, cell=cell, memory=state.memory, keys=state.keys,
                                 src_mask=state.src_mask, attention=weights[:, 0])
        return new_state, context

    def _output(self, hidden, context, embedded) -> torch.Tensor:
        readout = torch.tanh(self.readout(torch.cat([hidden, context, embedded], dim=-1)))
        return self.generator(self.dropout(readout))

    def step(self, prev_tokens: torch.Tensor, state: DecoderState
             ) -> tuple[torch.Tensor, DecoderState]:
        embedded = self.tgt_embed(prev_tokens)  # [B, E]
        state, context = self._advance(self.rnn.project_tokens(embedded, prev_tokens), state)
        logits = self._output(state.hidden[-1], context, embedded)  # [B, V]
        return torch.log_softmax(logits.float(), dim=-1), state

    def teacher_forced(self, src, src_lengths, tgt_in):
        state = self.encode(src, src_lengths)
        embedded = self.dropout(self.tgt_embed(tgt_in))  # [B, T, E]
        token_gates = self.rnn.project_tokens(embedded)  # [B, T, G], all steps at once
        hiddens, contexts, weights = [], [], []
        for gates in token_gates.unbind(1):  # unbind: one backward copy, not one per step
            state, context = self._advance(gates, state)
            hiddens.append(state.hidden[-1])
            contexts.append(context)
            weights.append(state.attention)
        # The readout and the output layer run once over all steps: [B, T, V].
        logits = self._output(torch.stack(hiddens, 1), torch.stack(contexts, 1), embedded)
        return logits, torch.stack(weights, dim=1)  # attention: [B, T, S]
