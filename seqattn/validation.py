"""Validation during training: dev loss and perplexity, greedy BLEU/chrF, sample translations."""

from __future__ import annotations

import time

import torch

from seqattn.config import Config
from seqattn.data import EncodedSplit
from seqattn.loss import corpus_loss
from seqattn.metrics import corpus_scores
from seqattn.search import decode, perplexity
from seqattn.tokenizer import Tokenizer

# Which way is better, for train.best_metric.
HIGHER_IS_BETTER = {"bleu": True, "chrf": True, "loss": False, "ppl": False}


def improves(value: float, best: float | None, metric: str) -> bool:
    if best is None:
        return True
    return value > best if HIGHER_IS_BETTER[metric] else value < best


@torch.inference_mode()
def validate(model, data: EncodedSplit, tokenizer: Tokenizer, config: Config,
             device: torch.device) -> dict:
    """Dev loss and perplexity (teacher forced, no smoothing) and greedy BLEU/chrF."""
    started = time.perf_counter()
    total_loss, total_tokens = corpus_loss(model, data, config.search.batch_size, device)
    search = config.search
    hyps = decode(model, data.src, 1, search.length_penalty, search.max_length_ratio,
                  search.max_length_offset, search.batch_size, device)
    texts = [tokenizer.decode_tgt(h[0].tokens) for h in hyps]
    scores = corpus_scores(texts, data.tgt_text)
    n = min(config.train.samples, len(texts))
    return {"loss": round(total_loss / max(total_tokens, 1), 4),
            "ppl": round(perplexity(total_loss, total_tokens), 3),
            "bleu": scores["bleu"], "chrf": scores["chrf"],
            "seconds": round(time.perf_counter() - started, 2),
            "hypotheses": texts,
            "samples": [(data.src_text[i], texts[i], data.tgt_text[i]) for i in range(n)]}
