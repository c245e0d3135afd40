"""What every model shares: the protocol search relies on, embeddings, encoder, bridge, output layer.

The protocol (search never asks which class a model is):
- `encode(src, src_lengths) -> DecoderState`
- `step(prev_tokens, state) -> (log_probs, state)`; `state.attention` holds the step's weights
  (`[B, S]`) for attention models and None otherwise
- `forward(batch) -> logits` (teacher forcing, all steps at once where the model allows)
- `generator.deferred()`: a context in which `forward` returns the vectors the output matrix
  multiplies (`generator.output_weights()`), so training can fuse that product with the loss
- `generator.restricted_to(ids)`: a context in which `step` scores only the target ids `ids`
  (log-probabilities normalised over them: a shortlist)
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, fields

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqattn.config import ModelConfig
from seqattn.tokenizer import PAD_ID

Hidden = list[torch.Tensor]


@dataclass
class DecoderState:
    """Everything the decoder carries between steps; every tensor is batch-first."""

    hidden: Hidden  # per layer [B, H]
    cell: Hidden | None  # per layer [B, H] (LSTM)
    memory: torch.Tensor | None = None  # encoder states [B, S, H]
    keys: torch.Tensor | None = None  # memory pre-projected for the attention score [B, S, A]
    src_mask: torch.Tensor | None = None  # [B, S], True on real tokens
    feed: torch.Tensor | None = None  # [B, F]: input feeding (luong) or fixed context (seq2seq)
    attention: torch.Tensor | None = None  # [B, S]: the last step's attention weights

    def select(self, index: torch.Tensor) -> DecoderState:
        """Rows `index` of every tensor: reorders or expands beams, drops finished sentences."""
        return DecoderState(**self.select_fields(index, [f.name for f in fields(self)]))

    def reorder_beams(self, index: torch.Tensor) -> DecoderState:
        """Like `select`, for an index that only moves rows among the beams of one sentence.

        The source side (memory, keys, mask) is identical across a sentence's beams, so it is
        kept as it is instead of being copied at every step of beam search.
        """
        source = {"memory", "keys", "src_mask"}
        moved = self.select_fields(index, [f.name for f in fields(self) if f.name not in source])
        return DecoderState(**{**{name: getattr(self, name) for name in source}, **moved})

    def select_fields(self, index: torch.Tensor, names: list[str]) -> dict:
        def pick(value):
            if value is None:
                return None
            if isinstance(value, list):
                return [t.index_select(0, index) for t in value]
            return value.index_select(0, index)

        return {name: pick(getattr(self, name)) for name in names}


class Encoder(nn.Module):
    """Embeddings + (bi)directional LSTM/GRU over the real tokens only (packed sequences)."""

    def __init__(self, embedding: nn.Embedding, cfg: ModelConfig) -> None:
        super().__init__()
        self.embedding = embedding
        self.bidirectional = cfg.bidirectional
        rnn_hidden = cfg.hidden_size // 2 if cfg.bidirectional else cfg.hidden_size
        rnn_class = nn.LSTM if cfg.cell == "lstm" else nn.GRU
        self.rnn = rnn_class(cfg.embedding_size, rnn_hidden, cfg.num_layers, batch_first=True,
                             bidirectional=cfg.bidirectional,
                             dropout=cfg.dropout if cfg.num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, src: torch.Tensor, src_lengths: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """src: [B, S] -> memory [B, S, H], final hidden [L, B, H], final cell [L, B, H] or None."""
        embedded = self.dropout(self.embedding(src))  # [B, S, E]
        packed = pack_padded_sequence(embedded, src_lengths.cpu(), batch_first=True,
                                      enforce_sorted=False)
        output, final = self.rnn(packed)
        memory, _ = pad_packed_sequence(output, batch_first=True, total_length=src.size(1))
        h, c = final if isinstance(final, tuple) else (final, None)
        return self.dropout(memory), self._join(h), self._join(c)  # memory: [B, S, H]

    def _join(self, state: torch.Tensor | None) -> torch.Tensor | None:
        """[L * dirs, B, H/dirs] -> [L, B, H]: forward and backward final states side by side."""
        if state is None or not self.bidirectional:
            return state
        layers2, batch, half = state.shape
        return state.view(layers2 // 2, 2, batch, half).transpose(1, 2).reshape(
            layers2 // 2, batch, 2 * half)


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


class EncoderDecoder(nn.Module):
    """Base of every model: embeddings, encoder, and the bridge from encoder to decoder state."""

    def __init__(self, cfg: ModelConfig, src_vocab_size: int, tgt_vocab_size: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.src_embed = nn.Embedding(src_vocab_size, cfg.embedding_size, padding_idx=PAD_ID)
        if cfg.share_embeddings:
            if src_vocab_size != tgt_vocab_size:
                raise ValueError("shared embeddings need one joint vocabulary")
            self.tgt_embed = self.src_embed
        else:
            self.tgt_embed = nn.Embedding(tgt_vocab_size, cfg.embedding_size, padding_idx=PAD_ID)
        self.encoder = Encoder(self.src_embed, cfg)
        hidden = cfg.hidden_size
        self.bridge_hidden = nn.Linear(hidden, hidden)
        self.bridge_cell = nn.Linear(hidden, hidden) if cfg.cell == "lstm" else None
        self.dropout = nn.Dropout(cfg.dropout)

    def encode_source(self, src: torch.Tensor, src_lengths: torch.Tensor) -> DecoderState:
        """Run the encoder; the decoder starts from tanh(W [h_fwd; h_bwd]) per layer."""
        memory, final_h, final_c = self.encoder(src, src_lengths)
        hidden = [torch.tanh(self.bridge_hidden(h)) for h in final_h]  # L x [B, H]
        cell = ([torch.tanh(self.bridge_cell(c)) for c in final_c]
                if self.bridge_cell is not None else None)
        return DecoderState(hidden=hidden, cell=cell, memory=memory, src_mask=src != PAD_ID)

    def forward(self, batch) -> torch.Tensor:
        """Teacher-forced logits for a Batch: [B, T, V]."""
        logits, _ = self.teacher_forced(batch.src, batch.src_lengths, batch.tgt_in)
        return logits

    def teacher_forced(self, src: torch.Tensor, src_lengths: torch.Tensor, tgt_in: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits [B, T, V] and attention [B, T, S] (None without attention)."""
        raise NotImplementedError

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor) -> DecoderState:
        raise NotImplementedError

    def step(self, prev_tokens: torch.Tensor, state: DecoderState
             ) -> tuple[torch.Tensor, DecoderState]:
        raise NotImplementedError

    @property
    def has_attention(self) -> bool:
        return False

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
