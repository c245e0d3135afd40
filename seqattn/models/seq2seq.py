"""Encoder-decoder without attention: the whole source squeezed into one fixed vector.

Sutskever et al. 2014: the encoder's final state starts the decoder and is all it sees.
With `context_every_step` (Cho et al. 2014), that context vector c also enters every decoder
step and the output layer: s_t = f(s_{t-1}, y_{t-1}, c), p(y_t) = g(s_t, y_{t-1}, c).
"""

from __future__ import annotations

import torch
from torch import nn

from seqattn.config import ModelConfig
from seqattn.models.base import DecoderState, EncoderDecoder, Generator
from seqattn.models.cells import RecurrentStack


class Seq2Seq(EncoderDecoder):
    def __init__(self, cfg: ModelConfig, src_vocab_size: int, tgt_vocab_size: int) -> None:
        super().__init__(cfg, src_vocab_size, tgt_vocab_size)
        hidden, emb = cfg.hidden_size, cfg.embedding_size
        context = hidden if cfg.context_every_step else 0
        self.rnn = RecurrentStack(cfg.cell, emb, context, hidden, cfg.num_layers, cfg.dropout)
        self.readout = nn.Linear(hidden + emb + context, emb)
        self.generator = Generator(emb, tgt_vocab_size, self.tgt_embed if cfg.tie_embeddings else None)

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor) -> DecoderState:
        state = self.encode_source(src, src_lengths)
        # The fixed context: the top encoder layer's final state (both directions). Nothing else
        # of the source reaches the decoder, so memory and mask are dropped.
        context = state.hidden[-1] if self.cfg.context_every_step else None
        return DecoderState(hidden=state.hidden, cell=state.cell, feed=context)

    def _token_gates(self, embedded: torch.Tensor, context: torch.Tensor | None,
                     ids: torch.Tensor | None = None) -> torch.Tensor:
        """Gate inputs of the first layer; the fixed context's share is computed once, not per step."""
        gates = self.rnn.project_tokens(embedded, ids)  # [B, G] or [B, T, G]
        if context is None:
            return gates
        projected = self.rnn.extra_proj(context)  # [B, G]
        return gates + (projected if gates.dim() == 2 else projected[:, None, :])

    def _output(self, hidden: torch.Tensor, embedded: torch.Tensor,
                context: torch.Tensor | None) -> torch.Tensor:
        parts = [hidden, embedded] if context is None else [hidden, embedded, context]
        return self.generator(self.dropout(torch.tanh(self.readout(torch.cat(parts, dim=-1)))))

    def step(self, prev_tokens: torch.Tensor, state: DecoderState
             ) -> tuple[torch.Tensor, DecoderState]:
        embedded = self.tgt_embed(prev_tokens)  # [B, E]
        gates = self._token_gates(embedded, state.feed, prev_tokens)  # [B, G]
        hidden, cell = self.rnn(gates, None, state.hidden, state.cell)
        logits = self._output(hidden[-1], embedded, state.feed)  # [B, V]
        new_state = DecoderState(hidden=hidden, cell=cell, feed=state.feed)
        return torch.log_softmax(logits.float(), dim=-1), new_state

    def teacher_forced(self, src, src_lengths, tgt_in):
        state = self.encode(src, src_lengths)
        embedded = self.dropout(self.tgt_embed(tgt_in))  # [B, T, E]
        token_gates = self._token_gates(embedded, state.feed)  # [B, T, G], all steps at once
        hidden, cell, outputs = state.hidden, state.cell, []
        for gates in token_gates.unbind(1):  # unbind: one backward copy, not one per step
            hidden, cell = self.rnn(gates, None, hidden, cell)
            outputs.append(hidden[-1])
        top = torch.stack(outputs, dim=1)  # [B, T, H]
        context = None if state.feed is None else state.feed[:, None, :].expand(-1, top.size(1), -1)
        return self._output(top, embedded, context), None
