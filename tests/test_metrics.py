"""Corpus scores (seqattn/metrics.py): sacreBLEU's BLEU and chrF, and BLEU per source length."""

from __future__ import annotations

from seqattn.metrics import bleu_by_length, corpus_scores

REFERENCES = ["a man rides a red bicycle down the street", "two dogs play in the snow",
              "the children are eating ice cream on a bench"]


def test_identical_text_scores_100_and_names_its_signature():
    scores = corpus_scores(REFERENCES, REFERENCES)
    assert scores["bleu"] == 100.0 and scores["chrf"] == 100.0
    assert "tok:13a" in scores["signatures"]["bleu"] and "nrefs:1" in scores["signatures"]["chrf"]


def test_worse_text_scores_lower_and_no_text_scores_zero():
    worse = corpus_scores(["a man rides a bicycle", "dogs in snow", "children eat"], REFERENCES)
    assert 0.0 <= worse["bleu"] < 100.0 and 0.0 < worse["chrf"] < 100.0
    assert corpus_scores([], []) == {"bleu": 0.0, "chrf": 0.0, "signatures": {}}


def test_bleu_by_length_buckets_by_source_words_and_skips_empty_buckets():
    hyps = [REFERENCES[0], "nothing alike here at all", "nor here, not one word", REFERENCES[2]]
    refs = [REFERENCES[0], REFERENCES[1], REFERENCES[1], REFERENCES[2]]
    buckets = bleu_by_length(hyps, refs, src_lengths=[3, 15, 20, 60])
    assert [b["bucket"] for b in buckets] == ["1-10", "11-20", ">50"]
    assert [b["sentences"] for b in buckets] == [1, 2, 1]
    assert buckets[0]["bleu"] == 100.0 and buckets[1]["bleu"] == 0.0 and buckets[2]["bleu"] == 100.0
    assert [b["bucket"] for b in bleu_by_length(hyps, refs, [1, 2, 3, 4], edges=(2,))] == ["1-2", ">2"]
