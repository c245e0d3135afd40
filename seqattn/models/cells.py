"""A stack of LSTM or GRU cells advanced one step at a time.

The first layer's input is split in two: the token embedding, whose projection to the gates is
computed for all steps at once (`project_tokens`, one large matrix product), and an optional
per-step `extra` input (attention context or input feeding) that only exists inside the loop.
"""

from __future__ import annotations

import torch
from torch import nn

Hidden = list[torch.Tensor]  # one [B, H] tensor per layer


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
