"""The recurrent parts of the three RNN kinds: encoder, decoder cell stack, bridge, state.

- `RNNEncoder`: embeddings + a (bi)directional LSTM/GRU over the real tokens only.
- `Bridge`: the decoder's first state from the encoder's final one, tanh(W [h_fwd; h_bwd]).
- `RecurrentStack`: LSTM or GRU cells advanced one step at a time. The first layer's input is
  split in two: the token embedding, whose projection to the gates is computed for all steps at
  once (`project_tokens`, one large matrix product), and an optional per-step `extra` input
  (attention context, input feeding, fixed context) that only exists inside the loop.
- `RNNState`: what an RNN decoder carries between steps (a `DecoderState`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqattn.config import RNNConfig
from seqattn.models.protocol import EncoderOutput, index_rows
from seqattn.tokenizer import PAD_ID

Hidden = list[torch.Tensor]  # one [B, H] tensor per layer


@dataclass
class RNNState:
    """An RNN decoder's state; every tensor is batch-first."""

    hidden: Hidden  # per layer [B, H]
    cell: Hidden | None  # per layer [B, H] (LSTM)
    memory: torch.Tensor | None = None  # encoder states [B, S, H] (attention models)
    keys: torch.Tensor | None = None  # memory pre-projected for the attention score [B, S, A]
    src_mask: torch.Tensor | None = None  # [B, S], True on real tokens
    input_feed: torch.Tensor | None = None  # luong: the last attentional vector h~ [B, H]
    fixed_context: torch.Tensor | None = None  # seq2seq (Cho et al.): the source vector c [B, H]
    attention: torch.Tensor | None = None  # [B, S]: the last step's attention weights

    # Identical across the beams of one sentence: reorder_beams leaves them as they are.
    SOURCE_SIDE = ("memory", "keys", "src_mask", "fixed_context")

    def select(self, index: torch.Tensor) -> RNNState:
        return RNNState(**{f.name: index_rows(getattr(self, f.name), index) for f in fields(self)})

    def reorder_beams(self, index: torch.Tensor) -> RNNState:
        moved = {f.name: index_rows(getattr(self, f.name), index) for f in fields(self)
                 if f.name not in self.SOURCE_SIDE}
        return replace(self, **moved)


class RNNEncoder(nn.Module):
    """Embeddings + (bi)directional LSTM/GRU over the real tokens only (packed sequences)."""

    def __init__(self, embedding: nn.Embedding, cfg: RNNConfig, dropout: float) -> None:
        super().__init__()
        self.embedding = embedding
        self.bidirectional = cfg.bidirectional
        rnn_hidden = cfg.hidden_size // 2 if cfg.bidirectional else cfg.hidden_size
        rnn_class = nn.LSTM if cfg.cell == "lstm" else nn.GRU
        self.rnn = rnn_class(embedding.embedding_dim, rnn_hidden, cfg.num_layers, batch_first=True,
                             bidirectional=cfg.bidirectional,
                             dropout=dropout if cfg.num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)

    def forward(self, src: torch.Tensor, src_lengths: torch.Tensor) -> EncoderOutput:
        """src: [B, S] -> memory [B, S, H] and the final states per layer."""
        embedded = self.dropout(self.embedding(src))  # [B, S, E]
        packed = pack_padded_sequence(embedded, src_lengths.cpu(), batch_first=True,
                                      enforce_sorted=False)
        output, final = self.rnn(packed)
        memory, _ = pad_packed_sequence(output, batch_first=True, total_length=src.size(1))
        h, c = final if isinstance(final, tuple) else (final, None)
        return EncoderOutput(memory=self.dropout(memory), src_mask=src != PAD_ID,
                             final_hidden=self._join(h), final_cell=self._join(c))

    def _join(self, state: torch.Tensor | None) -> Hidden | None:
        """[L * dirs, B, H/dirs] -> per layer [B, H]: both directions' final states side by side."""
        if state is None:
            return None
        if self.bidirectional:
            layers2, batch, half = state.shape
            state = state.view(layers2 // 2, 2, batch, half).transpose(1, 2).reshape(
                layers2 // 2, batch, 2 * half)
        return list(state.unbind(0))


class Bridge(nn.Module):
    """The decoder's first state: s_0 = tanh(W_s [h_fwd; h_bwd]) per layer (Bahdanau et al.,
    appendix A.2.2), and the same for an LSTM's cell."""

    def __init__(self, hidden_size: int, lstm: bool) -> None:
        super().__init__()
        self.hidden = nn.Linear(hidden_size, hidden_size)
        self.cell = nn.Linear(hidden_size, hidden_size) if lstm else None

    def forward(self, encoded: EncoderOutput) -> tuple[Hidden, Hidden | None]:
        hidden = [torch.tanh(self.hidden(h)) for h in encoded.final_hidden]  # L x [B, H]
        cell = ([torch.tanh(self.cell(c)) for c in encoded.final_cell]
                if self.cell is not None else None)
        return hidden, cell


class RecurrentStack(nn.Module):
    def __init__(self, cell: str, token_size: int, extra_size: int, hidden_size: int,
                 num_layers: int, dropout: float) -> None:
        super().__init__()
        if cell not in ("lstm", "gru"):
            raise ValueError(f"unknown cell '{cell}'")
        self.is_lstm = cell == "lstm"
        gates = (4 if self.is_lstm else 3) * hidden_size
        self.hidden_size = hidden_size
        self.token_proj = nn.Linear(token_size, gates)
        self.extra_proj = nn.Linear(extra_size, gates, bias=False) if extra_size else None
        self.layer_proj = nn.ModuleList(nn.Linear(hidden_size, gates) for _ in range(num_layers - 1))
        self.hidden_proj = nn.ModuleList(nn.Linear(hidden_size, gates) for _ in range(num_layers))
        self.dropout = nn.Dropout(dropout)
        self.token_table: torch.Tensor | None = None  # see freeze_token_table
        if self.is_lstm:  # forget-gate bias 1: remember by default early in training
            with torch.no_grad():
                for proj in self.hidden_proj:
                    proj.bias[hidden_size : 2 * hidden_size].fill_(1.0)

    def project_tokens(self, embedded: torch.Tensor, ids: torch.Tensor | None = None
                       ) -> torch.Tensor:
        """[..., E] -> [..., G]; a lookup instead of a product when a token table is frozen."""
        if self.token_table is not None and ids is not None:
            return self.token_table[ids]
        return self.token_proj(embedded)

    def freeze_token_table(self, embedding: nn.Embedding) -> None:
        """For inference only: the gate inputs of every vocabulary entry, computed once ([V, G])."""
        with torch.no_grad():
            self.token_table = self.token_proj(embedding.weight).detach()

    def forward(self, token_gates: torch.Tensor, extra: torch.Tensor | None, hidden: Hidden,
                cell: Hidden | None) -> tuple[Hidden, Hidden | None]:
        """token_gates: [B, G]; extra: [B, X] or None; hidden/cell: per layer [B, H]."""
        x = token_gates if extra is None else token_gates + self.extra_proj(extra)
        new_hidden, new_cell = [], [] if cell is not None else None
        for layer, h in enumerate(hidden):
            if layer > 0:
                x = self.layer_proj[layer - 1](self.dropout(new_hidden[-1]))
            h_gates = self.hidden_proj[layer](h)  # [B, G]
            if self.is_lstm:
                i, f, g, o = (x + h_gates).chunk(4, dim=-1)
                c = torch.sigmoid(f) * cell[layer] + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                new_cell.append(c)
            else:
                x_r, x_z, x_n = x.chunk(3, dim=-1)
                h_r, h_z, h_n = h_gates.chunk(3, dim=-1)
                r = torch.sigmoid(x_r + h_r)
                z = torch.sigmoid(x_z + h_z)
                n = torch.tanh(x_n + r * h_n)
                h = (1 - z) * n + z * h
            new_hidden.append(h)
        return new_hidden, new_cell
