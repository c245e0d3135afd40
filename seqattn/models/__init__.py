"""Model kinds and the one factory that builds them."""

from __future__ import annotations

from seqattn.config import ModelConfig
from seqattn.models.bahdanau import Bahdanau
from seqattn.models.base import DecoderState, EncoderDecoder
from seqattn.models.luong import Luong
from seqattn.models.seq2seq import Seq2Seq

MODEL_KINDS: dict[str, type[EncoderDecoder]] = {
    "seq2seq": Seq2Seq,
    "bahdanau": Bahdanau,
    "luong": Luong,
}


def build_model(cfg: ModelConfig, src_vocab_size: int, tgt_vocab_size: int) -> EncoderDecoder:
    """The model named by `cfg.kind`, with fresh weights."""
    return MODEL_KINDS[cfg.kind](cfg, src_vocab_size, tgt_vocab_size)


__all__ = ["MODEL_KINDS", "DecoderState", "EncoderDecoder", "build_model"]
