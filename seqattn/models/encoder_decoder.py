"""An encoder-decoder assembled from parts: embeddings, an encoder, a decoder, an output layer.

Every model kind is this one class with different parts (seqattn/models/__init__.py builds
them). The parts meet in two small interfaces:
- encoder: `forward(src, src_lengths) -> EncoderOutput`
- decoder: `init_state(EncoderOutput) -> DecoderState`, `step(prev_tokens, state) ->
  (pre-output [B, D], state)`, `forward(tgt_in, state) -> (pre-output [B, T, D], attention)`,
  and `has_attention`.
The output layer (`Generator`) turns pre-outputs into logits over the target vocabulary.
"""

from __future__ import annotations

import torch
from torch import nn

from seqattn.models.output import Generator
from seqattn.models.protocol import DecoderState
from seqattn.tokenizer import PAD_ID


class EncoderDecoder(nn.Module):
    """Implements `seqattn.models.protocol.Seq2SeqModel` over its parts."""

    def __init__(self, src_embed: nn.Embedding, tgt_embed: nn.Embedding, encoder: nn.Module,
                 decoder: nn.Module, generator: Generator) -> None:
        super().__init__()
        self.src_embed = src_embed  # the same modules the encoder and decoder hold
        self.tgt_embed = tgt_embed
        self.encoder = encoder
        self.decoder = decoder
        self.generator = generator

    @property
    def has_attention(self) -> bool:
        return self.decoder.has_attention

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor) -> DecoderState:
        """src: [B, S] -> the decoder's first state."""
        return self.decoder.init_state(self.encoder(src, src_lengths))

    def step(self, prev_tokens: torch.Tensor, state: DecoderState
             ) -> tuple[torch.Tensor, DecoderState]:
        """prev_tokens: [B] -> log-probabilities [B, V] (float32, also under autocast), state."""
        pre_output, state = self.decoder.step(prev_tokens, state)  # [B, D]
        return torch.log_softmax(self.generator(pre_output).float(), dim=-1), state

    def teacher_forced(self, src: torch.Tensor, src_lengths: torch.Tensor, tgt_in: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits [B, T, V] and attention [B, T, ..., S] (None without attention)."""
        pre_output, attention = self.decoder(tgt_in, self.encode(src, src_lengths))  # [B, T, D]
        return self.generator(pre_output), attention

    def forward(self, batch) -> torch.Tensor:
        """Teacher-forced logits for a Batch: [B, T, V]."""
        logits, _ = self.teacher_forced(batch.src, batch.src_lengths, batch.tgt_in)
        return logits

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def make_embeddings(src_vocab_size: int, tgt_vocab_size: int, size: int, shared: bool
                    ) -> tuple[nn.Embedding, nn.Embedding]:
    """Source and target embeddings; one matrix for both with `shared` (a joint vocabulary)."""
    src_embed = nn.Embedding(src_vocab_size, size, padding_idx=PAD_ID)
    if not shared:
        return src_embed, nn.Embedding(tgt_vocab_size, size, padding_idx=PAD_ID)
    if src_vocab_size != tgt_vocab_size:
        raise ValueError("shared embeddings need one joint vocabulary")
    return src_embed, src_embed
