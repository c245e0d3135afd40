"""Attention heatmaps: source pieces on the x axis, target pieces on the y axis.

matplotlib is optional (`pip install 'seqattn[plot]'`); everything else works without it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seqattn.errors import UserError


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError("attention pictures need matplotlib", "--attention",
                        "pip install 'seqattn[plot]' (or matplotlib)") from None
    return plt


def draw_attention(ax, attention: np.ndarray, src_pieces: list[str], tgt_pieces: list[str],
                   title: str | None = None) -> None:
    """Draw one attention matrix ([target, source]) on a matplotlib axis."""
    ax.imshow(attention, cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(src_pieces)))
    ax.set_xticklabels(src_pieces, rotation=90)
    ax.set_yticks(range(len(tgt_pieces)))
    ax.set_yticklabels(tgt_pieces)
    ax.xaxis.tick_top()
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    if title:
        ax.set_title(title, pad=40, fontsize=9)


def save_attention_png(path: Path, attention: np.ndarray, src_pieces: list[str],
                       tgt_pieces: list[str], title: str | None = None) -> None:
    plt = _pyplot()
    width = max(4.0, 0.35 * len(src_pieces) + 1.5)
    height = max(3.0, 0.3 * len(tgt_pieces) + 1.5)
    fig, ax = plt.subplots(figsize=(width, height))
    draw_attention(ax, attention, src_pieces, tgt_pieces, title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def require_matplotlib() -> None:
    _pyplot()
