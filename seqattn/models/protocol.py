"""The protocols that search, training and evaluation rely on; no model class is ever named.

A model (`Seq2SeqModel`) is an encoder-decoder: `encode` once per batch of sources, then `step`
one target token at a time, carrying a `DecoderState`. Teacher-forced `forward` computes all
target positions at once for training. How a state holds its history is the model's business:
RNN decoders carry hidden vectors, a Transformer decoder carries a key/value cache. Search only
needs to pick and reorder a state's rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

import torch

State = TypeVar("State", bound="DecoderState")


@runtime_checkable
class DecoderState(Protocol):
    """What a decoder carries between steps; every tensor in it is batch-first."""

    # The last step's attention over the source, [B, S] (or [B, ..., S], e.g. [B, layers, heads,
    # S] for a Transformer); None for a model without attention.
    attention: torch.Tensor | None

    def select(self: State, index: torch.Tensor) -> State:
        """Rows `index` [N] of every tensor: expands beams, drops finished sentences."""
        ...

    def reorder_beams(self: State, index: torch.Tensor) -> State:
        """Like `select`, for an index that only moves rows among one sentence's beams, so that
        whatever is identical across a sentence's beams (the source side) can stay as it is."""
        ...


@dataclass
class EncoderOutput:
    """What an encoder hands its decoder."""

    memory: torch.Tensor  # [B, S, H] one state per source position
    src_mask: torch.Tensor  # [B, S] True on real tokens
    final_hidden: list[torch.Tensor] | None = None  # RNN: per layer [B, H], both directions joined
    final_cell: list[torch.Tensor] | None = None  # LSTM: per layer [B, H]


class OutputLayer(Protocol):
    """The vocabulary projection (`seqattn.models.output.Generator`) and its two hooks."""

    def output_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The vocabulary matrix [V, D] and bias [V]."""
        ...

    def deferred(self) -> AbstractContextManager[None]:
        """Inside: forward returns the [.., D] vectors `output_weights` multiplies, so training
        can fuse that product with the loss (seqattn/loss.py)."""
        ...

    def restricted_to(self, ids: torch.Tensor) -> AbstractContextManager[None]:
        """Inside: logits cover only the target ids `ids` [C] (a shortlist), in that order."""
        ...


class Seq2SeqModel(Protocol):
    """Every model kind; `seqattn.models.encoder_decoder.EncoderDecoder` implements it."""

    generator: OutputLayer
    has_attention: bool

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor) -> DecoderState:
        """src: [B, S] ids ending in EOS, then PAD; src_lengths: [B]."""
        ...

    def step(self, prev_tokens: torch.Tensor, state: DecoderState
             ) -> tuple[torch.Tensor, DecoderState]:
        """prev_tokens: [B] -> log-probabilities [B, V] (float32) and the next state."""
        ...

    def teacher_forced(self, src: torch.Tensor, src_lengths: torch.Tensor, tgt_in: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits [B, T, V] for every target position at once, and attention [B, T, ..., S]."""
        ...

    def forward(self, batch: Any) -> torch.Tensor:
        """Teacher-forced logits of a `seqattn.data.Batch`: [B, T, V]."""
        ...

    def num_parameters(self) -> int: ...

    def parameters(self) -> Iterator[torch.nn.Parameter]: ...


def index_rows(value: Any, index: torch.Tensor) -> Any:
    """Rows `index` of a tensor, of each tensor in a list/tuple (per layer), or None."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return type(value)(index_rows(v, index) for v in value)
    return value.index_select(0, index)
