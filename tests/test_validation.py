"""Validation during training (seqattn/validation.py): which way is better, and what validate reports."""

from __future__ import annotations

import math

import numpy as np
import pytest

from seqattn.api import Translator
from seqattn.data import EncodedSplit
from seqattn.validation import HIGHER_IS_BETTER, improves, validate
from tests.conftest import toy_pairs


@pytest.mark.parametrize("metric", ["bleu", "chrf"])
def test_higher_is_better_for_scores(metric):
    assert improves(20.0, None, metric)  # the first validation always improves
    assert improves(20.5, 20.0, metric) and not improves(19.0, 20.0, metric)
    assert not improves(20.0, 20.0, metric)  # a tie is no improvement


@pytest.mark.parametrize("metric", ["loss", "ppl"])
def test_lower_is_better_for_losses(metric):
    assert improves(3.0, None, metric)
    assert improves(2.9, 3.0, metric) and not improves(3.1, 3.0, metric)
    assert not improves(3.0, 3.0, metric)


def test_every_best_metric_has_a_direction():
    assert set(HIGHER_IS_BETTER) == {"bleu", "chrf", "loss", "ppl"}


def test_validate_reports_loss_ppl_scores_and_greedy_hypotheses(trained_run):
    translator = Translator(trained_run, device="cpu")
    tok = translator.tokenizer
    pairs = toy_pairs(12, seed=7)
    src, tgt = [p["src"] for p in pairs], [p["tgt"] for p in pairs]
    data = EncodedSplit([np.asarray(ids, np.int32) for ids in tok.encode_src(src)],
                        [np.asarray(ids, np.int32) for ids in tok.encode_tgt(tgt)], src, tgt)
    report = validate(translator.model, data, tok, translator.config, translator.device)
    assert {"loss", "ppl", "bleu", "chrf", "seconds", "hypotheses", "samples"} <= set(report)
    assert report["loss"] > 0 and report["ppl"] == pytest.approx(math.exp(report["loss"]), rel=1e-3)
    assert 0.0 <= report["bleu"] <= 100.0 and 0.0 <= report["chrf"] <= 100.0
    # the hypotheses are greedy search's, the same as translating with beam 1
    assert report["hypotheses"] == [t.text for t in translator.translate(src, beam=1, attention=False)]
    samples = report["samples"]
    assert len(samples) == min(translator.config.train.samples, len(src))
    assert samples[0] == (src[0], report["hypotheses"][0], tgt[0])
