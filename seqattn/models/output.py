"""The output layer: a pre-output vector to vocabulary logits, optionally tied to an embedding.

Besides the plain product it has the hooks of the model protocol (seqattn/models/protocol.py):
`deferred` (training fuses the product with the loss) and `restricted_to` (decoding scores a
shortlist), and an int8 mode set by seqattn/quantize.py.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

import torch
from torch import nn


class Generator(nn.Module):
    """Output layer: a pre-output vector to vocabulary logits, optionally tied to the embedding."""

    def __init__(self, input_size: int, vocab_size: int, tied: nn.Embedding | None) -> None:
        super().__init__()
        self.tied = tied
        if tied is None:
            self.proj = nn.Linear(input_size, vocab_size)
        else:
            emb = tied.embedding_dim
            self.proj = nn.Linear(input_size, emb, bias=False) if input_size != emb else None
            self.bias = nn.Parameter(torch.zeros(vocab_size))
            # The tied matrix also makes the logits: at nn.Embedding's N(0, 1) they would start
            # with a spread of about sqrt(emb) (a first loss far above log V). N(0, 1/emb) gives
            # logits of order one, like an untied output layer's.
            with torch.no_grad():
                tied.weight.normal_(0.0, emb ** -0.5)
                if tied.padding_idx is not None:
                    tied.weight[tied.padding_idx].zero_()
        self.deferring = False  # see `deferred`
        self.subset = None  # the output product over a shortlist, see `restricted_to`
        self.int8 = False  # set by seqattn.quantize for int8 inference
        self.full = None  # int8: the packed product over the whole vocabulary (tied weights)

    def output_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The vocabulary matrix [V, input or emb] and bias [V]."""
        if self.tied is None:
            return self.proj.weight, self.proj.bias
        return self.tied.weight, self.bias

    def _product(self, weight: torch.Tensor, bias: torch.Tensor) -> Callable:
        """x -> x W^T + b, in int8 once the model is quantized."""
        if self.int8:
            from seqattn.quantize import int8_linear, pack_int8

            packed = pack_int8(weight, bias)
            return lambda x: int8_linear(x, packed)
        return lambda x: nn.functional.linear(x, weight, bias)

    def use_int8(self) -> None:
        self.int8 = True
        if self.tied is not None:
            self.full = self._product(*self.output_weights())

    @contextmanager
    def deferred(self):
        """Inside the block, forward stops before the vocabulary product: it returns the vectors
        that `output_weights` multiplies, for a loss that fuses that product (seqattn/loss.py)."""
        self.deferring = True
        try:
            yield
        finally:
            self.deferring = False

    @contextmanager
    def restricted_to(self, ids: torch.Tensor):
        """Inside the block, logits cover only the target ids `ids` ([C], in that order)."""
        weight, bias = self.output_weights()
        self.subset = self._product(weight.index_select(0, ids), bias.index_select(0, ids))
        try:
            yield
        finally:
            self.subset = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.tied is not None and self.proj is not None:
            x = self.proj(x)  # to the embedding size first
        if self.deferring:
            return x
        if self.subset is not None:
            return self.subset(x)
        if self.tied is None:
            return self.proj(x)
        if self.full is not None:
            return self.full(x)
        return nn.functional.linear(x, self.tied.weight, self.bias)
