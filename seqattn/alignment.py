"""Which attention to look at, and word alignments read off it.

A model's cross-attention is held as `[layers, heads, T, S]` (T output pieces, + 1 for EOS when
the output ended; S source pieces + EOS). An RNN kind has one attention "layer" with one "head",
the Transformer one per decoder layer and head. A *view* is the `[T, S]` matrix a user looks at:
one head of one layer, or the mean of that layer's heads (the default: the last layer's mean).

Alignments are Pharaoh pairs `i-j` (source piece i, target piece j, 0-based), one per target
piece: the source piece its row of the view weighs most, the way OpenNMT-py's `-report_align`
reads a head-average. Rows and columns of EOS are left out: EOS is no word of the sentence.

numpy only: the CLI checks a choice before torch or a model is loaded.
"""

from __future__ import annotations

from typing import Literal, Union

import numpy as np

from seqattn.errors import UserError

Head = Union[int, Literal["mean", "all"]]  # a head number (1-based), their mean, or every head
LAYER_OPTION, HEAD_OPTION = "--attention-layer", "--attention-head"


def parse_head(text: str | int, option: str = HEAD_OPTION) -> Head:
    """`--attention-head` text -> a 1-based head number, "mean" or "all"."""
    value = str(text).strip().lower()
    if value in ("mean", "all"):
        return value  # type: ignore[return-value]
    if value.isdigit() and int(value) >= 1:
        return int(value)
    raise UserError(f"{option} takes a head number (from 1), mean or all, got '{text}'", option,
                    f"e.g. {option} mean")


def check_choice(layer: int | None, head: Head, grid: tuple[int, int] | None, kind: str,
                 layer_option: str = LAYER_OPTION, head_option: str = HEAD_OPTION) -> None:
    """Fail in one line unless `layer`/`head` exist in a model with `grid` = (layers, heads).

    `grid` None: the model has no attention; then only the defaults are accepted.
    """
    if grid is None:
        if layer is not None or head != "mean":
            raise UserError(f"a {kind} model has no attention to choose from", layer_option
                            if layer is not None else head_option, "leave the option out")
        return
    layers, heads = grid
    if layer is not None and not 1 <= layer <= layers:
        raise UserError(f"layer {layer} does not exist: {_has(kind, layers, heads)}",
                        layer_option, f"use 1..{layers}, or leave it out for the last")
    if isinstance(head, int) and not 1 <= head <= heads:
        raise UserError(f"head {head} does not exist: {_has(kind, layers, heads)}", head_option,
                        f"use 1..{heads}, mean or all")


def _has(kind: str, layers: int, heads: int) -> str:
    if kind != "transformer":
        return f"a {kind} model has one attention layer with one head"
    return f"this model has {layers} decoder layer(s) with {heads} head(s) each"


def as_layers(attention: np.ndarray) -> np.ndarray:
    """Search's per-step attention, [T, S] (RNN) or [T, layers, heads, S] -> [layers, heads, T, S]."""
    if attention.ndim == 2:
        return attention[None, None]  # one layer, one head: [1, 1, T, S]
    if attention.ndim == 4:
        return attention.transpose(1, 2, 0, 3)  # [T, L, H, S] -> [L, H, T, S]
    raise ValueError(f"attention of shape {attention.shape}: expected [T, S] or [T, L, H, S]")


def select_view(layers: np.ndarray, layer: int | None = None, head: Head = "mean",
                kind: str = "transformer") -> np.ndarray:
    """The [T, S] view of `layers` ([layers, heads, T, S]); `all` views the mean (one matrix)."""
    check_choice(layer, head, layers.shape[:2], kind)
    chosen = layers[-1 if layer is None else layer - 1]  # [H, T, S]
    if isinstance(head, int):
        return chosen[head - 1]
    # The mean of rows that each sum to 1 still sums to 1: the view stays a distribution.
    return chosen.mean(axis=0)


def describe_view(layers: np.ndarray, layer: int | None, head: Head, kind: str) -> str:
    """A short label of what `select_view(layers, layer, head)` shows, for titles and JSON."""
    count, heads = layers.shape[:2]
    if kind != "transformer":
        return f"{kind} attention"
    where = f"layer {count if layer is None else layer}/{count}"
    if isinstance(head, int):
        return f"{where}, head {head}/{heads}"
    return f"{where}, mean of {heads} heads"


def pharaoh(view: np.ndarray, src_len: int, tgt_len: int) -> str:
    """'i-j ...': for each target piece j < tgt_len, the source piece i < src_len it weighs
    most. `view`: [T, S] with T >= tgt_len, S >= src_len (extra rows/columns: EOS).
    Pieces, not words: the indices are those of `src_pieces` and `tgt_pieces`."""
    if src_len == 0 or tgt_len == 0:
        return ""
    # The argmax is taken over real source pieces only, so a row that weighs EOS most still
    # points at its most-weighed word (as OpenNMT-py trims the source before its argmax).
    best = view[:tgt_len, :src_len].argmax(axis=1)  # [tgt_len]
    pairs = sorted((int(i), j) for j, i in enumerate(best))  # by source, then target, as usual
    return " ".join(f"{i}-{j}" for i, j in pairs)


def parse_pharaoh(text: str) -> list[tuple[int, int]]:
    """'0-0 1-2' -> [(0, 0), (1, 2)]; the inverse of `pharaoh` for readers and tests."""
    pairs = []
    for pair in text.split():
        src, _, tgt = pair.partition("-")
        pairs.append((int(src), int(tgt)))
    return pairs
