"""Model kinds and the one factory that builds them, each from its parts, in plain sight."""

from __future__ import annotations

from collections.abc import Callable

from seqattn.config import ModelConfig
from seqattn.models.bahdanau import BahdanauDecoder
from seqattn.models.encoder_decoder import EncoderDecoder, make_embeddings
from seqattn.models.luong import LuongDecoder
from seqattn.models.no_attention import FixedContextDecoder
from seqattn.models.output import Generator
from seqattn.models.protocol import DecoderState, Seq2SeqModel
from seqattn.models.rnn import RNNEncoder

RNN_DECODERS = {"seq2seq": FixedContextDecoder, "bahdanau": BahdanauDecoder, "luong": LuongDecoder}


def build_rnn_model(cfg: ModelConfig, src_vocab_size: int, tgt_vocab_size: int) -> EncoderDecoder:
    """A recurrent encoder and one of the three RNN decoders."""
    src_embed, tgt_embed = make_embeddings(src_vocab_size, tgt_vocab_size, cfg.embedding_size,
                                           cfg.share_embeddings)
    encoder = RNNEncoder(src_embed, cfg.rnn, cfg.dropout)
    decoder = RNN_DECODERS[cfg.kind](tgt_embed, cfg)
    generator = Generator(decoder.output_size, tgt_vocab_size,
                          tgt_embed if cfg.tie_embeddings else None)
    return EncoderDecoder(src_embed, tgt_embed, encoder, decoder, generator)


def build_transformer(cfg: ModelConfig, src_vocab_size: int, tgt_vocab_size: int) -> EncoderDecoder:
    from seqattn.models.transformer import build_transformer as build

    return build(cfg, src_vocab_size, tgt_vocab_size)


MODEL_KINDS: dict[str, Callable[[ModelConfig, int, int], EncoderDecoder]] = {
    "seq2seq": build_rnn_model,
    "bahdanau": build_rnn_model,
    "luong": build_rnn_model,
    "transformer": build_transformer,
}


def build_model(cfg: ModelConfig, src_vocab_size: int, tgt_vocab_size: int) -> EncoderDecoder:
    """The model named by `cfg.kind`, with fresh weights."""
    return MODEL_KINDS[cfg.kind](cfg, src_vocab_size, tgt_vocab_size)


__all__ = ["MODEL_KINDS", "DecoderState", "EncoderDecoder", "Seq2SeqModel", "build_model"]
