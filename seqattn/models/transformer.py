"""The Transformer (Vaswani et al. 2017): an encoder-decoder made of attention alone.

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V                         (eq. 1)
    MultiHead(Q, K, V) = Concat(head_1..head_h) W^O, head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V)
    FFN(x) = max(0, x W_1 + b_1) W_2 + b_2                                    (eq. 2)
    PE(pos, 2i) = sin(pos / 10000^(2i/d)),  PE(pos, 2i+1) = cos(pos / 10000^(2i/d))   (sec. 3.5)
    embeddings are multiplied by sqrt(d_model)                               (sec. 3.4)

Each sublayer sits in a residual branch with dropout, and a layer norm either after the sum
(`post`, the paper: x = LN(x + Sublayer(x))) or before the sublayer (`pre`: x = x +
Sublayer(LN(x)), with one more LN at the end of each stack; it trains without a long warmup).

Decoding runs `step` one token at a time against a key/value cache (`TransformerState`): the
self-attention keys and values of the tokens decoded so far, and the cross-attention keys and
values of the source, computed once per sentence. A step therefore costs O(t), not a re-run of
the whole prefix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import torch
from torch import nn
from torch.nn import functional as F

from seqattn.config import ModelConfig, TransformerConfig
from seqattn.models.encoder_decoder import EncoderDecoder, make_embeddings
from seqattn.models.output import Generator
from seqattn.models.protocol import EncoderOutput, index_rows


def scaled_dot_product_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                                 mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. (1), written out: query [B, H, T, dk], key/value [B, H, S, dk], mask [B, 1, 1|T, S]
    (True = may attend) -> context [B, H, T, dk] and the weights [B, H, T, S]."""
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.size(-1))  # [B, H, T, S]
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return weights @ value, weights


class MultiHeadAttention(nn.Module):
    """h heads of eq. (1) over d/h-wide projections, joined by W^O."""

    def __init__(self, size: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.query = nn.Linear(size, size)  # W^Q of all heads at once
        self.key_value = nn.Linear(size, 2 * size)  # W^K and W^V
        self.output = nn.Linear(size, size)  # W^O

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, d] -> [B, H, T, d/H]."""
        batch, length, size = x.shape
        return x.view(batch, length, self.heads, size // self.heads).transpose(1, 2)

    def keys_values(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """K and V of the positions `x` [B, S, d]: each [B, H, S, d/H] (cached by decoding)."""
        key, value = self.key_value(x).chunk(2, dim=-1)
        return self.split_heads(key), self.split_heads(value)

    def forward(self, x: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                mask: torch.Tensor | None = None, causal: bool = False, need_weights: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: [B, T, d] queries -> [B, T, d], and the weights [B, H, T, S] if `need_weights`."""
        query = self.split_heads(self.query(x))  # [B, H, T, d/H]
        weights = None
        if need_weights:  # the textbook form: the weights are what the pictures show
            context, weights = scaled_dot_product_attention(query, key, value, mask)
        else:  # fast path: torch's fused kernel (flash / memory-efficient), same result (tested)
            context = F.scaled_dot_product_attention(
                query, key, value, attn_mask=mask, is_causal=causal,
                dropout_p=self.dropout if self.training else 0.0)
        batch, _, length, _ = context.shape
        context = context.transpose(1, 2).reshape(batch, length, -1)  # [B, T, d]
        return self.output(context), weights


class FeedForward(nn.Module):
    """Eq. (2), position by position."""

    def __init__(self, size: int, inner: int, activation: str) -> None:
        super().__init__()
        self.inner, self.outer = nn.Linear(size, inner), nn.Linear(inner, size)
        self.activation = F.relu if activation == "relu" else F.gelu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.outer(self.activation(self.inner(x)))


class Residual(nn.Module):
    """x + Dropout(Sublayer(LN(x))) for pre-norm; LN(x + Dropout(Sublayer(x))) for post-norm."""

    def __init__(self, size: int, dropout: float, pre_norm: bool) -> None:
        super().__init__()
        self.norm, self.dropout, self.pre_norm = nn.LayerNorm(size), nn.Dropout(dropout), pre_norm

    def forward(self, x: torch.Tensor, sublayer) -> tuple[torch.Tensor, object]:
        """`sublayer(y)` returns (output, extra); the extra (attention weights) is passed on."""
        out, extra = sublayer(self.norm(x) if self.pre_norm else x)
        x = x + self.dropout(out)
        return (x if self.pre_norm else self.norm(x)), extra


class PositionalEncoding(nn.Module):
    """Token embedding * sqrt(d) + position (sinusoidal, sec. 3.5, or learned), then dropout."""

    def __init__(self, embedding: nn.Embedding, cfg: TransformerConfig, dropout: float) -> None:
        super().__init__()
        size = embedding.embedding_dim
        self.embedding, self.scale, self.dropout = embedding, math.sqrt(size), nn.Dropout(dropout)
        self.learned = nn.Embedding(cfg.max_positions, size) if cfg.positions == "learned" else None
        if self.learned is not None:
            nn.init.normal_(self.learned.weight, 0.0, size ** -0.5)
        else:  # not a parameter: computed for max_positions, extended on demand
            self.register_buffer("table", sinusoids(cfg.max_positions, size), persistent=False)

    def forward(self, ids: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """ids [B, T] at positions offset..offset+T-1 -> [B, T, d]."""
        positions = torch.arange(offset, offset + ids.size(1), device=ids.device)
        if self.learned is not None:
            position = self.learned(positions)
        else:
            if offset + ids.size(1) > self.table.size(0):
                self.table = sinusoids(2 * (offset + ids.size(1)), self.table.size(1)).to(ids.device)
            position = self.table[positions]
        return self.dropout(self.embedding(ids) * self.scale + position)


def sinusoids(length: int, size: int) -> torch.Tensor:
    """PE [length, size]: sin on even features, cos on odd ones, wavelengths 2pi..10000*2pi."""
    position = torch.arange(length, dtype=torch.float32)[:, None]  # [L, 1]
    rate = torch.exp(torch.arange(0, size, 2, dtype=torch.float32) * (-math.log(10000.0) / size))
    table = torch.zeros(length, size)
    table[:, 0::2] = torch.sin(position * rate)
    table[:, 1::2] = torch.cos(position * rate)[:, : size // 2]
    return table


class EncoderLayer(nn.Module):
    def __init__(self, size: int, cfg: TransformerConfig, dropout: float) -> None:
        super().__init__()
        pre = cfg.norm == "pre"
        self.attention = MultiHeadAttention(size, cfg.heads, cfg.attention_dropout)
        self.feed_forward = FeedForward(size, cfg.ff_size, cfg.activation)
        self.sublayers = nn.ModuleList(Residual(size, dropout, pre) for _ in range(2))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: [B, S, d]; mask [B, 1, 1, S] hides padding keys."""
        x, _ = self.sublayers[0](x, lambda y: self.attention(y, *self.attention.keys_values(y), mask))
        x, _ = self.sublayers[1](x, lambda y: (self.feed_forward(y), None))
        return x


class TransformerEncoder(nn.Module):
    def __init__(self, embedding: nn.Embedding, cfg: ModelConfig) -> None:
        super().__init__()
        t, size = cfg.transformer, cfg.embedding_size
        self.embed = PositionalEncoding(embedding, t, cfg.dropout)
        self.layers = nn.ModuleList(EncoderLayer(size, t, cfg.dropout) for _ in range(t.encoder_layers))
        self.final_norm = nn.LayerNorm(size) if t.norm == "pre" else None

    def forward(self, src: torch.Tensor, src_lengths: torch.Tensor) -> EncoderOutput:
        """src: [B, S] -> memory [B, S, d]. The mask comes from the lengths, so whatever sits in
        the padded positions never reaches a real one."""
        src_mask = torch.arange(src.size(1), device=src.device)[None, :] < src_lengths[:, None]
        x = self.embed(src)  # [B, S, d]
        for layer in self.layers:
            x = layer(x, src_mask[:, None, None, :])
        if self.final_norm is not None:
            x = self.final_norm(x)
        return EncoderOutput(memory=x, src_mask=src_mask)


@dataclass
class TransformerState:
    """The decoder's key/value cache (a `DecoderState`), per layer; batch-first."""

    self_keys: list[torch.Tensor] | None  # [B, H, t, d/H]: the t tokens decoded so far (None: t=0)
    self_values: list[torch.Tensor] | None
    cross_keys: list[torch.Tensor]  # [B, H, S, d/H]: the source, computed once
    cross_values: list[torch.Tensor]
    src_mask: torch.Tensor  # [B, S]
    position: int = 0  # how many tokens were decoded (the next token's position)
    attention: torch.Tensor | None = None  # [B, layers, heads, S]: the last step's cross-attention

    # Identical across the beams of one sentence: reorder_beams leaves them as they are.
    SOURCE_SIDE = ("cross_keys", "cross_values", "src_mask")

    def select(self, index: torch.Tensor) -> TransformerState:
        return replace(self, **{name: index_rows(getattr(self, name), index)
                                for name in self._tensor_fields()})

    def reorder_beams(self, index: torch.Tensor) -> TransformerState:
        return replace(self, **{name: index_rows(getattr(self, name), index)
                                for name in self._tensor_fields() if name not in self.SOURCE_SIDE})

    def _tensor_fields(self) -> list[str]:
        return [f.name for f in fields(self) if f.name != "position"]


class DecoderLayer(nn.Module):
    def __init__(self, size: int, cfg: TransformerConfig, dropout: float) -> None:
        super().__init__()
        pre = cfg.norm == "pre"
        self.self_attention = MultiHeadAttention(size, cfg.heads, cfg.attention_dropout)
        self.cross_attention = MultiHeadAttention(size, cfg.heads, cfg.attention_dropout)
        self.feed_forward = FeedForward(size, cfg.ff_size, cfg.activation)
        self.sublayers = nn.ModuleList(Residual(size, dropout, pre) for _ in range(3))

    def forward(self, x: torch.Tensor, self_kv, cross_kv, src_mask: torch.Tensor, causal: bool,
                need_weights: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: [B, T, d]. `self_kv` (K, V) or None: None computes them from the sublayer's input
        (teacher forcing, with a causal mask); `cross_kv`: the source's (K, V)."""
        def attend_self(y):
            key, value = self_kv if self_kv is not None else self.self_attention.keys_values(y)
            return self.self_attention(y, key, value, causal=causal)

        x, _ = self.sublayers[0](x, attend_self)
        x, weights = self.sublayers[1](x, lambda y: self.cross_attention(
            y, *cross_kv, src_mask[:, None, None, :], need_weights=need_weights))
        x, _ = self.sublayers[2](x, lambda y: (self.feed_forward(y), None))
        return x, weights  # weights: [B, H, T, S] or None

    def self_input(self, x: torch.Tensor) -> torch.Tensor:
        """What the self-attention sublayer reads (its keys/values come from it)."""
        return self.sublayers[0].norm(x) if self.sublayers[0].pre_norm else x


class TransformerDecoder(nn.Module):
    has_attention = True

    def __init__(self, embedding: nn.Embedding, cfg: ModelConfig) -> None:
        super().__init__()
        t, size = cfg.transformer, cfg.embedding_size
        self.embedding = embedding
        self.embed = PositionalEncoding(embedding, t, cfg.dropout)
        self.layers = nn.ModuleList(DecoderLayer(size, t, cfg.dropout) for _ in range(t.decoder_layers))
        self.final_norm = nn.LayerNorm(size) if t.norm == "pre" else nn.Identity()
        self.output_size = size

    def init_state(self, encoded: EncoderOutput) -> TransformerState:
        cross = [layer.cross_attention.keys_values(encoded.memory) for layer in self.layers]
        return TransformerState(self_keys=None, self_values=None,
                                cross_keys=[k for k, _ in cross], cross_values=[v for _, v in cross],
                                src_mask=encoded.src_mask)

    def forward(self, tgt_in: torch.Tensor, state: TransformerState
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Teacher forcing: [B, T] -> pre-output [B, T, d], and in eval mode the cross-attention
        [B, T, layers, heads, S] (training takes the fused kernel and returns None)."""
        x, need_weights, weights = self.embed(tgt_in), not self.training, []
        for i, layer in enumerate(self.layers):
            x, w = layer(x, None, (state.cross_keys[i], state.cross_values[i]), state.src_mask,
                         causal=True, need_weights=need_weights)
            weights.append(w)
        attention = torch.stack(weights, dim=2).transpose(1, 3) if need_weights else None
        return self.final_norm(x), attention  # stack: [B, H, L, T, S] -> [B, T, L, H, S]

    def step(self, prev_tokens: torch.Tensor, state: TransformerState
             ) -> tuple[torch.Tensor, TransformerState]:
        """prev_tokens [B] at position state.position -> pre-output [B, d] and the next state."""
        x = self.embed(prev_tokens[:, None], offset=state.position)  # [B, 1, d]
        keys, values, weights = [], [], []
        for i, layer in enumerate(self.layers):
            key, value = layer.self_attention.keys_values(layer.self_input(x))  # [B, H, 1, d/H]
            if state.self_keys is not None:  # the cache: this token's K, V after the earlier ones
                key = torch.cat([state.self_keys[i], key], dim=2)
                value = torch.cat([state.self_values[i], value], dim=2)
            x, w = layer(x, (key, value), (state.cross_keys[i], state.cross_values[i]),
                         state.src_mask, causal=False, need_weights=True)
            keys.append(key)
            values.append(value)
            weights.append(w[:, :, 0])  # [B, H, S]
        new_state = replace(state, self_keys=keys, self_values=values, position=state.position + 1,
                            attention=torch.stack(weights, dim=1))  # [B, L, H, S]
        return self.final_norm(x)[:, 0], new_state


def build_transformer(cfg: ModelConfig, src_vocab_size: int, tgt_vocab_size: int) -> EncoderDecoder:
    """The Transformer from its parts, initialised as is usual for it: Xavier-uniform matrices,
    N(0, d^-1/2) embeddings (times sqrt(d) at the input: unit scale)."""
    src_embed, tgt_embed = make_embeddings(src_vocab_size, tgt_vocab_size, cfg.embedding_size,
                                           cfg.share_embeddings)
    encoder = TransformerEncoder(src_embed, cfg)
    decoder = TransformerDecoder(tgt_embed, cfg)
    for module in (*encoder.modules(), *decoder.modules()):
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)
    for embedding in {id(src_embed): src_embed, id(tgt_embed): tgt_embed}.values():
        nn.init.normal_(embedding.weight, 0.0, cfg.embedding_size ** -0.5)
        with torch.no_grad():
            embedding.weight[embedding.padding_idx].zero_()
    generator = Generator(cfg.embedding_size, tgt_vocab_size,
                          tgt_embed if cfg.tie_embeddings else None)
    return EncoderDecoder(src_embed, tgt_embed, encoder, decoder, generator)
