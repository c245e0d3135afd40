"""The decoder without attention: the whole source squeezed into one fixed vector.

Sutskever et al. 2014: the encoder's final state starts the decoder and is all it sees.
With `rnn.context_every_step` (Cho et al. 2014), that context vector c also enters every decoder
step and the output layer: s_t = f(s_{t-1}, y_{t-1}, c), p(y_t) = g(s_t, y_{t-1}, c).
"""

from __future__ import annotations

import torch
from torch import nn

from seqattn.config import ModelConfig
from seqattn.models.protocol import EncoderOutput
from seqattn.models.rnn import Bridge, RecurrentStack, RNNState


class FixedContextDecoder(nn.Module):
    has_attention = False

    def __init__(self, embedding: nn.Embedding, cfg: ModelConfig) -> None:
        super().__init__()
        rnn, emb = cfg.rnn, cfg.embedding_size
        context = rnn.hidden_size if rnn.context_every_step else 0
        self.embedding = embedding
        self.bridge = Bridge(rnn.hidden_size, rnn.cell == "lstm")
        self.rnn = RecurrentStack(rnn.cell, emb, context, rnn.hidden_size, rnn.num_layers,
                                  cfg.dropout)
        self.readout = nn.Linear(rnn.hidden_size + emb + context, emb)
        self.dropout = nn.Dropout(cfg.dropout)
        self.context_every_step = rnn.context_every_step
        self.output_size = emb

    def init_state(self, encoded: EncoderOutput) -> RNNState:
        hidden, cell = self.bridge(encoded)
        # The fixed context: the top layer's first decoder state, made from both directions'
        # final encoder states. Nothing else of the source reaches the decoder.
        context = hidden[-1] if self.context_every_step else None
        return RNNState(hidden=hidden, cell=cell, fixed_context=context)

    def freeze_token_table(self) -> None:
        self.rnn.freeze_token_table(self.embedding)

    def _token_gates(self, embedded: torch.Tensor, context: torch.Tensor | None,
                     ids: torch.Tensor | None = None) -> torch.Tensor:
        """Gate inputs of the first layer; the fixed context's share is computed once, not per step."""
        gates = self.rnn.project_tokens(embedded, ids)  # [B, G] or [B, T, G]
        if context is None:
            return gates
        projected = self.rnn.extra_proj(context)  # [B, G]
        return gates + (projected if gates.dim() == 2 else projected[:, None, :])

    def _pre_output(self, hidden: torch.Tensor, embedded: torch.Tensor,
                    context: torch.Tensor | None) -> torch.Tensor:
        parts = [hidden, embedded] if context is None else [hidden, embedded, context]
        return self.dropout(torch.tanh(self.readout(torch.cat(parts, dim=-1))))

    def step(self, prev_tokens: torch.Tensor, state: RNNState) -> tuple[torch.Tensor, RNNState]:
        embedded = self.embedding(prev_tokens)  # [B, E]
        gates = self._token_gates(embedded, state.fixed_context, prev_tokens)  # [B, G]
        hidden, cell = self.rnn(gates, None, state.hidden, state.cell)
        out = self._pre_output(hidden[-1], embedded, state.fixed_context)  # [B, E]
        return out, RNNState(hidden=hidden, cell=cell, fixed_context=state.fixed_context)

    def forward(self, tgt_in: torch.Tensor, state: RNNState) -> tuple[torch.Tensor, None]:
        embedded = self.dropout(self.embedding(tgt_in))  # [B, T, E]
        token_gates = self._token_gates(embedded, state.fixed_context)  # [B, T, G], all at once
        hidden, cell, outputs = state.hidden, state.cell, []
        for gates in token_gates.unbind(1):  # unbind: one backward copy, not one per step
            hidden, cell = self.rnn(gates, None, hidden, cell)
            outputs.append(hidden[-1])
        top = torch.stack(outputs, dim=1)  # [B, T, H]
        context = state.fixed_context
        if context is not None:
            context = context[:, None, :].expand(-1, top.size(1), -1)  # [B, T, H]
        return self._pre_output(top, embedded, context), None
