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


def save_attention_grid_png(path: Path, heads: np.ndarray, src_pieces: list[str],
                            tgt_pieces: list[str], title: str | None = None,
                            columns: int = 4) -> None:
    """Every head of one layer (`heads`: [H, T, S]) as a grid of small heatmaps in one PNG."""
    plt = _pyplot()
    count = heads.shape[0]
    cols = min(columns, count)
    rows = -(-count // cols)  # ceiling division
    panel_w = max(2.5, 0.3 * len(src_pieces) + 1.0)
    panel_h = max(2.2, 0.25 * len(tgt_pieces) + 1.4)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * panel_w, rows * panel_h + 0.6),
                             squeeze=False)
    for index, ax in enumerate(axes.flat):
        if index >= count:
            ax.axis("off")  # the grid's last row may be short
            continue
        draw_attention(ax, heads[index], src_pieces, tgt_pieces)
        ax.set_title(f"head {index + 1}", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.set_xlabel("")
        ax.set_ylabel("")
        if index % cols:
            ax.set_yticklabels([])  # the output pieces are those of the row's first panel
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def require_matplotlib() -> None:
    _pyplot()
