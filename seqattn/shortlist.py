"""Lexical shortlist: the target pieces a batch may output, for faster decoding.

The output layer over the whole target vocabulary is the largest cost of a decoder step. A
shortlist (as in Marian's decoder) scores only the pieces that can plausibly appear in the
translation of this batch: the `frequent` most frequent target pieces (function words,
punctuation) plus, for every source piece in the batch, the `per_source` target pieces most
associated with it in the training data. Association is the Dice coefficient of sentence-level
co-occurrence, 2 c(s, t) / (c(s) + c(t)). The softmax is then taken over the shortlist only, so
decoding is an approximation of the full model; check BLEU with and without it.

The table is built once from the run's training split and kept in `RUN_DIR/shortlist.pt`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from seqattn.checkpoint import save_checkpoint
from seqattn.config import STORED_PER_SOURCE
from seqattn.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID

log = logging.getLogger(__name__)

MAX_PAIRS = 500_000  # the statistics need a sample, not a whole WMT corpus


@dataclass
class LexicalTable:
    by_frequency: torch.Tensor  # [Vt] target ids, most frequent first
    by_source: torch.Tensor  # [Vs, STORED_PER_SOURCE] target ids, best first; -1 pads
    identity: str  # what it was built from (training data + tokenizer)

    def candidates(self, src: torch.Tensor, frequent: int, per_source: int) -> torch.Tensor:
        """Sorted target ids a batch `src` [B, S] may output (always EOS and UNK, never PAD/BOS)."""
        sources = src.unique().cpu()
        parts = [self.by_frequency[:frequent], self.by_source[sources, :per_source].flatten(),
                 torch.tensor([EOS_ID, UNK_ID])]
        ids = torch.cat(parts).unique()  # sorted
        return ids[(ids != PAD_ID) & (ids != BOS_ID) & (ids >= 0)].to(src.device)

    def for_search(self, search) -> Callable[[torch.Tensor], torch.Tensor]:
        """`candidates` with the sizes of a SearchConfig: what `decode(shortlist=...)` takes."""
        return partial(self.candidates, frequent=search.shortlist,
                       per_source=search.shortlist_per_source)


def build_table(src: list[np.ndarray], tgt: list[np.ndarray], src_vocab: int, tgt_vocab: int,
                identity: str) -> LexicalTable:
    """Co-occurrence counts over (up to MAX_PAIRS) sentence pairs, ranked by Dice."""
    pairs = min(len(src), MAX_PAIRS)
    count_src = np.zeros(src_vocab, np.int64)
    count_tgt = np.zeros(tgt_vocab, np.int64)
    keys = []
    for s, t in zip(src[:pairs], tgt[:pairs]):
        s, t = np.unique(s).astype(np.int64), np.unique(t).astype(np.int64)
        count_src[s] += 1
        count_tgt[t] += 1
        keys.append((s[:, None] * tgt_vocab + t[None, :]).ravel())
    by_source = np.full((src_vocab, STORED_PER_SOURCE), -1, np.int64)
    if keys:
        key, together = np.unique(np.concatenate(keys), return_counts=True)
        s_id, t_id = key // tgt_vocab, key % tgt_vocab
        dice = 2.0 * together / (count_src[s_id] + count_tgt[t_id])
        order = np.lexsort((t_id, -dice, s_id))  # by source, best Dice first, ties by id
        s_id, t_id = s_id[order], t_id[order]
        starts = np.searchsorted(s_id, np.arange(src_vocab))
        rank = np.arange(len(s_id)) - starts[s_id]
        keep = rank < STORED_PER_SOURCE
        by_source[s_id[keep], rank[keep]] = t_id[keep]
    by_frequency = np.argsort(-count_tgt, kind="stable")
    return LexicalTable(torch.from_numpy(by_frequency), torch.from_numpy(by_source), identity)


def load_or_build(run_dir: Path, config, tokenizer) -> LexicalTable:
    """The run's table, built from its training split (and saved) on first use."""
    from seqattn.rundir import RunDir

    run = RunDir(run_dir)
    path = run.shortlist
    if path.exists():
        try:
            stored = torch.load(path, weights_only=True)
            if stored.get("tokenizer") == tokenizer.fingerprint:
                return LexicalTable(stored["by_frequency"], stored["by_source"], stored["identity"])
        except Exception:  # a damaged table is rebuilt, never trusted
            log.warning("ignoring unreadable shortlist %s", path)
    from seqattn.prepare import training_sample

    src, tgt, identity = training_sample(config, tokenizer, run, MAX_PAIRS)
    table = build_table(src, tgt, tokenizer.src_vocab_size, tokenizer.tgt_vocab_size, identity)
    try:
        save_checkpoint({"by_frequency": table.by_frequency, "by_source": table.by_source,
                         "identity": table.identity, "tokenizer": tokenizer.fingerprint}, path)
    except OSError as exc:  # a read-only run dir still decodes; it just rebuilds next time
        log.warning("could not save the shortlist to %s: %s", path, exc)
    return table
