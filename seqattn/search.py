"""Greedy and beam search, written once against the model protocol (`encode` / `step`).

Both are batched: every sentence (x beam) sits in one tensor per step, finished sentences leave
the computation, and a sentence's output does not depend on which others share its batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from seqattn.data import collate, sentence_batches
from seqattn.models.protocol import DecoderState, Seq2SeqModel
from seqattn.tokenizer import BOS_ID, EOS_ID


@dataclass
class Hypothesis:
    tokens: list[int]  # output ids, without EOS
    score: float  # log-probability divided by the GNMT length penalty
    log_prob: float
    attention: np.ndarray | None  # [steps, ..., source length]: a row per output token (+ EOS)
    ended: bool  # True when it ended in EOS, False when it hit the length limit


def length_penalty(length: int, alpha: float) -> float:
    """GNMT (Wu et al. 2016, eq. 14): lp(Y) = ((5 + |Y|) / 6) ^ alpha."""
    return ((5.0 + length) / 6.0) ** alpha


def max_output_lengths(src_lengths: torch.Tensor, ratio: float, offset: int) -> torch.Tensor:
    """Output length limit per sentence, counted in tokens including EOS."""
    return (src_lengths.float() * ratio).ceil().long() + offset


def _restricted(model: Seq2SeqModel, vocab: torch.Tensor | None):
    """Score only the shortlist `vocab` inside the block (all of the vocabulary when None)."""
    return nullcontext() if vocab is None else model.generator.restricted_to(vocab)


def _finish(tokens: list[int], log_prob: float, attention: torch.Tensor | None, src_len: int,
            alpha: float, ended: bool) -> Hypothesis:
    steps = len(tokens) + (1 if ended else 0)
    attn = None if attention is None else attention[:steps, ..., :src_len].float().cpu().numpy()
    return Hypothesis(tokens, log_prob / length_penalty(steps, alpha), log_prob, attn, ended)


@torch.inference_mode()
def greedy_search(model: Seq2SeqModel, src: torch.Tensor, src_lengths: torch.Tensor,
                  max_lengths: torch.Tensor, alpha: float = 0.0,
                  return_attention: bool = False,
                  vocab: torch.Tensor | None = None) -> list[list[Hypothesis]]:
    """Pick the most likely token at each step; one hypothesis per sentence.

    `vocab`: the target ids the output may use (a shortlist), or None for all.
    """
    with _restricted(model, vocab):
        return _greedy(model, src, src_lengths, max_lengths, alpha, return_attention, vocab)


def _greedy(model, src, src_lengths, max_lengths, alpha, return_attention, vocab):
    batch = src.size(0)
    state = model.encode(src, src_lengths)
    alive = torch.arange(batch, device=src.device)  # original rows still decoding
    prev = torch.full((batch,), BOS_ID, dtype=torch.long, device=src.device)
    tokens = torch.empty(batch, 0, dtype=torch.long, device=src.device)
    log_probs = torch.zeros(batch, device=src.device)
    attn = None
    results: list[list[Hypothesis]] = [[] for _ in range(batch)]
    limit = max_lengths.to(src.device)
    for t in range(int(max_lengths.max())):
        step_lp, state = model.step(prev, state)  # [N, V]
        best_lp, prev = step_lp.max(dim=-1)  # [N]
        if vocab is not None:
            prev = vocab[prev]  # shortlist position -> target id
        log_probs = log_probs + best_lp
        tokens = torch.cat([tokens, prev[:, None]], dim=1)
        if return_attention and state.attention is not None:
            step_attn = state.attention[:, None]  # [N, 1, ..., S]
            attn = step_attn if attn is None else torch.cat([attn, step_attn], dim=1)
        done = (prev == EOS_ID) | (t + 1 >= limit[alive])
        if bool(done.any()):
            for row in done.nonzero().flatten().tolist():
                ended = int(prev[row]) == EOS_ID
                out = tokens[row].tolist()
                out = out[:-1] if ended else out
                results[int(alive[row])] = [_finish(
                    out, float(log_probs[row]), None if attn is None else attn[row],
                    int(src_lengths[alive[row]]), alpha, ended)]
            keep = (~done).nonzero().flatten()
            if keep.numel() == 0:
                break
            state, alive, prev = state.select(keep), alive[keep], prev[keep]
            tokens, log_probs = tokens[keep], log_probs[keep]
            attn = None if attn is None else attn[keep]
    return results


@torch.inference_mode()
def beam_search(model: Seq2SeqModel, src: torch.Tensor, src_lengths: torch.Tensor,
                beam_size: int, max_lengths: torch.Tensor, alpha: float = 1.0, nbest: int = 1,
                return_attention: bool = False,
                vocab: torch.Tensor | None = None) -> list[list[Hypothesis]]:
    """Beam search; returns up to `nbest` hypotheses per sentence, best (highest score) first.

    Alive hypotheses compete on raw log-probability; finished ones are ranked by the length-
    normalised score. A sentence is done once `beam_size` hypotheses finished or at its limit.
    `vocab`: the target ids the output may use (a shortlist), or None for all.
    """
    with _restricted(model, vocab):
        return _beam(model, src, src_lengths, beam_size, max_lengths, alpha, nbest,
                     return_attention, vocab)


@dataclass
class _Beams:
    """The hypotheses still growing: K rows per sentence that is not done."""

    alive: torch.Tensor  # [N] the original sentence of each group of K rows
    scores: torch.Tensor  # [N, K] log-probabilities so far
    tokens: torch.Tensor  # [N*K, t] output so far
    prev: torch.Tensor  # [N*K] the last token (before the first step: [N] BOS)
    attention: torch.Tensor | None  # [N*K, t, ..., S] when asked for
    state: DecoderState

    def rows(self, keep: torch.Tensor, k: int) -> _Beams:
        """Only the sentences `keep` [M] (positions among the N), with all their K rows."""
        rows = (keep[:, None] * k + torch.arange(k, device=keep.device)[None, :]).flatten()
        return _Beams(self.alive[keep], self.scores[keep], self.tokens[rows], self.prev[rows],
                      None if self.attention is None else self.attention[rows],
                      self.state.select(rows))


def _beam(model, src, src_lengths, beam_size, max_lengths, alpha, nbest, return_attention, vocab):
    device, batch, k = src.device, src.size(0), beam_size
    scores = torch.full((batch, k), float("-inf"), device=device)
    scores[:, 0] = 0.0  # all beams start identical: keep only the first
    beams = _Beams(torch.arange(batch, device=device), scores,
                   torch.empty(batch * k, 0, dtype=torch.long, device=device),
                   torch.full((batch,), BOS_ID, dtype=torch.long, device=device), None,
                   model.encode(src, src_lengths))
    finished: list[list[Hypothesis]] = [[] for _ in range(batch)]
    limit, lengths = max_lengths.to(device), src_lengths.tolist()
    for t in range(int(max_lengths.max())):
        step_lp, state = model.step(beams.prev, beams.state)  # [N*K, V]
        if t == 0:  # the K beams of a sentence are still one: the first step ran once per sentence
            first = torch.arange(batch, device=device).repeat_interleave(k)
            step_lp, state = step_lp.index_select(0, first), state.select(first)
        top_scores, origin, top_tokens = _candidates(beams.scores, step_lp, k, vocab)
        step_attn = state.attention if return_attention else None
        ended = _eos_hypotheses(beams, top_scores, origin, top_tokens, step_attn, k)
        for sent, tokens, score, attention in ended:
            finished[sent].append(_finish(tokens, score, attention, lengths[sent], alpha, True))
        beams = _extend(beams, state, top_scores, origin, top_tokens, step_attn, k)
        done = _end_at_limit(beams, finished, t + 1 >= limit[beams.alive], k, lengths, alpha)
        if bool(done.any()):
            keep = (~done).nonzero().flatten()
            if keep.numel() == 0:
                break
            beams = beams.rows(keep, k)
    return [sorted(hyps, key=lambda h: -h.score)[:nbest] for hyps in finished]


def _candidates(scores: torch.Tensor, step_lp: torch.Tensor, k: int, vocab: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The best 2K continuations per sentence: scores [N, 2K], source rows [N, 2K], tokens."""
    n, width = scores.size(0), step_lp.size(-1)  # width: the vocabulary, or the shortlist
    candidates = (scores.view(-1, 1) + step_lp).view(n, k * width)
    top_scores, top_index = candidates.topk(min(2 * k, k * width), dim=1)  # [N, 2K]
    origin = top_index // width + (torch.arange(n, device=scores.device) * k)[:, None]  # rows
    top_tokens = top_index % width
    if vocab is not None:
        top_tokens = vocab[top_tokens]  # shortlist position -> target id
    return top_scores, origin, top_tokens


def _eos_hypotheses(beams: _Beams, top_scores, origin, top_tokens, step_attn, k: int) -> list:
    """(sentence, tokens, score, attention) of each EOS candidate ranked inside the top K."""
    ends = (top_tokens == EOS_ID) & (torch.arange(top_tokens.size(1), device=origin.device) < k)
    ends &= top_scores > float("-inf")
    ending = ends.nonzero().tolist()
    if not ending:
        return []
    # Python lists once per step, not a tensor lookup per hypothesis
    origin_l, scores_l, alive_l = origin.tolist(), top_scores.tolist(), beams.alive.tolist()
    return [(alive_l[sent], beams.tokens[origin_l[sent][j]].tolist(), scores_l[sent][j],
             _history(beams.attention, step_attn, origin_l[sent][j])) for sent, j in ending]


def _extend(beams: _Beams, state, top_scores, origin, top_tokens, step_attn, k: int) -> _Beams:
    """Continue with the best K candidates of each sentence that are not EOS."""
    not_eos = top_tokens != EOS_ID
    chosen = not_eos & (not_eos.cumsum(dim=1) <= k)  # exactly K per sentence (<= K EOS in 2K)
    sel = chosen.nonzero()[:, 1].view(origin.size(0), k)
    rows = origin.gather(1, sel).flatten()  # [N*K]
    prev = top_tokens.gather(1, sel).flatten()
    attention = beams.attention
    if step_attn is not None:
        new = step_attn[rows][:, None]
        attention = new if attention is None else torch.cat([attention[rows], new], dim=1)
    return _Beams(beams.alive, top_scores.gather(1, sel), torch.cat([beams.tokens[rows],
                  prev[:, None]], dim=1), prev, attention,
                  state.reorder_beams(rows))  # rows stay within their sentence's beams


def _end_at_limit(beams: _Beams, finished: list, at_limit: torch.Tensor, k: int,
                  lengths: list[int], alpha: float) -> torch.Tensor:
    """Sentences at their length limit end with their alive beams; others end once K hypotheses
    finished. Returns which of the N sentences are done."""
    alive_l = beams.alive.tolist()
    counts = torch.tensor([len(finished[s]) for s in alive_l], device=at_limit.device)
    for sent in (at_limit & (counts < k)).nonzero().flatten().tolist():
        for j, score in enumerate(beams.scores[sent].tolist()):
            row = sent * k + j
            if score > float("-inf"):
                attention = None if beams.attention is None else beams.attention[row]
                finished[alive_l[sent]].append(_finish(
                    beams.tokens[row].tolist(), score, attention, lengths[alive_l[sent]],
                    alpha, ended=False))
    return at_limit | (counts >= k)


def _history(attn: torch.Tensor | None, step_attn: torch.Tensor | None,
             row: int) -> torch.Tensor | None:
    """The attention rows of hypothesis `row` including this step's (for a hypothesis ending now)."""
    if step_attn is None:
        return None
    last = step_attn[row][None, :]
    return last if attn is None else torch.cat([attn[row], last], dim=0)


@torch.inference_mode()
def decode(model: Seq2SeqModel, sources: list[np.ndarray], beam_size: int, alpha: float,
           max_length_ratio: float, max_length_offset: int, batch_size: int,
           device: torch.device, nbest: int = 1, return_attention: bool = False,
           progress=None, shortlist: Callable[[torch.Tensor], torch.Tensor] | None = None
           ) -> list[list[Hypothesis]]:
    """Translate id sequences (no specials) in length-sorted batches; results in input order.

    `shortlist(src)` gives the target ids a batch may output (see seqattn.shortlist).
    """
    model.eval()
    results: list[list[Hypothesis]] = [[] for _ in sources]
    lengths = [len(s) + 1 for s in sources]
    empty = np.empty(0, dtype=np.int32)
    for indices in sentence_batches(lengths, batch_size):
        batch = collate([sources[i] for i in indices], [empty] * len(indices), indices)
        src, src_lengths = batch.src.to(device), batch.src_lengths.to(device)
        limits = max_output_lengths(batch.src_lengths, max_length_ratio, max_length_offset)
        vocab = None if shortlist is None else shortlist(src)
        if beam_size == 1:
            out = greedy_search(model, src, src_lengths, limits, alpha, return_attention, vocab)
        else:
            out = beam_search(model, src, src_lengths, beam_size, limits, alpha, nbest,
                              return_attention, vocab)
        for i, hyps in zip(indices, out):
            results[i] = hyps
        if progress is not None:
            progress.update(len(indices))
    return results


def perplexity(total_loss: float, tokens: int) -> float:
    return math.exp(min(total_loss / max(tokens, 1), 100.0))
