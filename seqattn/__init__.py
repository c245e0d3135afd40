"""seqattn: sequence-to-sequence translation with and without attention."""

from __future__ import annotations

__version__ = "0.1.0"


def load(run_dir, checkpoint=None, device="auto", overrides=None):
    """Load a trained run for translation: `seqattn.load("runs/bahdanau").translate([...])`.

    `overrides`: `--set` strings for the search settings, e.g. `["search.shortlist=500"]`.
    """
    from seqattn.api import load as _load

    return _load(run_dir, checkpoint=checkpoint, device=device, overrides=overrides)


def draw_attention(ax, attention, src_pieces, tgt_pieces, title=None):
    """Draw one attention heatmap on a matplotlib axis."""
    from seqattn.plot import draw_attention as _draw

    _draw(ax, attention, src_pieces, tgt_pieces, title)


__all__ = ["__version__", "draw_attention", "load"]
