"""Corpus scores with sacreBLEU: BLEU and chrF on detokenised text, with their signatures."""

from __future__ import annotations

from sacrebleu.metrics import BLEU, CHRF


def corpus_scores(hypotheses: list[str], references: list[str]) -> dict:
    """BLEU (13a tokenisation) and chrF against one reference per sentence."""
    if not hypotheses:
        return {"bleu": 0.0, "chrf": 0.0, "signatures": {}}
    bleu, chrf = BLEU(), CHRF()
    bleu_score = bleu.corpus_score(hypotheses, [references])
    chrf_score = chrf.corpus_score(hypotheses, [references])
    return {
        "bleu": round(bleu_score.score, 2),
        "chrf": round(chrf_score.score, 2),
        "signatures": {"bleu": str(bleu.get_signature()), "chrf": str(chrf.get_signature())},
    }


def bleu_by_length(hypotheses: list[str], references: list[str], src_lengths: list[int],
                   edges: tuple[int, ...] = (10, 20, 30, 40, 50)) -> list[dict]:
    """BLEU per source-length bucket (source length in words), as in Bahdanau et al. 2015, fig. 2."""
    buckets: list[dict] = []
    bounds = [0, *edges, 10**9]
    for low, high in zip(bounds, bounds[1:]):
        rows = [i for i, n in enumerate(src_lengths) if low < n <= high]
        if not rows:
            continue
        label = f"{low + 1}-{high}" if high < 10**9 else f">{low}"
        score = BLEU().corpus_score([hypotheses[i] for i in rows], [[references[i] for i in rows]])
        buckets.append({"bucket": label, "sentences": len(rows), "bleu": round(score.score, 2)})
    return buckets
