"""The lexical shortlist (seqattn/shortlist.py): against exact search, its table, its use by translate."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from seqattn.rundir import RunDir
from seqattn.search import decode
from seqattn.shortlist import build_table
from seqattn.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from tests.test_search import VOCAB, sources, trained_copy_model


def run(model, srcs, beam, shortlist=None):
    return decode(model, srcs, beam, alpha=1.0, max_length_ratio=1.5, max_length_offset=3,
                  batch_size=4, device=torch.device("cpu"), shortlist=shortlist)


@pytest.fixture(scope="module", params=["seq2seq", "bahdanau", "luong", "transformer"])
def model(request):
    return trained_copy_model(request.param)


def everything(src):
    return torch.arange(VOCAB)


@pytest.mark.parametrize("beam", [1, 4])
def test_a_shortlist_of_the_whole_vocabulary_changes_nothing(model, beam):
    srcs = sources(12)
    full, listed = run(model, srcs, beam), run(model, srcs, beam, everything)
    for a, b in zip(full, listed):
        assert a[0].tokens == b[0].tokens
        assert a[0].score == pytest.approx(b[0].score, abs=1e-4)


def test_a_shortlist_renormalises_over_its_pieces(model):
    """Scores over a subset can only rise: the same mass is shared among fewer pieces."""
    ids = torch.arange(VOCAB)
    subset = ids[(ids != PAD_ID) & (ids != BOS_ID)]
    srcs = sources(12)
    for a, b in zip(run(model, srcs, 1), run(model, srcs, 1, lambda src: subset)):
        if a[0].tokens == b[0].tokens:
            assert b[0].log_prob >= a[0].log_prob - 1e-5


@pytest.mark.parametrize("beam", [1, 4])
def test_output_stays_inside_the_shortlist(model, beam):
    allowed = torch.tensor([UNK_ID, EOS_ID, 5, 7, 11, 13])
    for hyps in run(model, sources(12), beam, lambda src: allowed):
        assert set(hyps[0].tokens) <= set(allowed.tolist())
        assert hyps[0].log_prob <= 0.0  # normalised over the shortlist: still a distribution


def test_the_shortlist_restriction_ends_with_the_search(model):
    srcs = sources(6)
    run(model, srcs, 3, lambda src: torch.tensor([EOS_ID, 5]))
    assert model.generator.subset is None
    assert [h[0].tokens for h in run(model, srcs, 3)] == \
        [h[0].tokens for h in run(model, srcs, 3, everything)]


def test_the_lexical_table_ranks_the_aligned_word_first():
    # source piece s (10..15) always comes with target piece s + 20; 4 and 5 are in every pair
    rng = np.random.default_rng(0)
    src, tgt = [], []
    for _ in range(300):
        words = rng.choice(np.arange(10, 16), size=3, replace=False)
        src.append(np.concatenate([words, [4]]).astype(np.int32))
        tgt.append(np.concatenate([words + 20, [5]]).astype(np.int32))
    table = build_table(src, tgt, 20, 40, "toy")
    for s in range(10, 16):
        assert int(table.by_source[s, 0]) == s + 20
    assert int(table.by_frequency[0]) == 5  # in every target sentence
    ids = table.candidates(torch.tensor([[10, 11, 4, PAD_ID]]), frequent=1, per_source=1)
    assert ids.tolist() == sorted(ids.tolist())
    assert {30, 31, 5, EOS_ID, UNK_ID} <= set(ids.tolist())
    assert PAD_ID not in ids.tolist() and BOS_ID not in ids.tolist()
    assert 32 not in ids.tolist()  # not a candidate of any source piece in the batch


def test_translate_with_shortlist_and_int8(trained_run, tmp_path):
    from seqattn.api import load

    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    lines = ["ka lo mi", "ze ta", "pu ri so ne"]
    exact = [t.text for t in load(run_dir).translate(lines, beam=3)]
    assert not RunDir(run_dir).shortlist.exists()
    fast = load(run_dir, overrides=["search.shortlist=5", "search.precision=int8"])
    assert RunDir(run_dir).shortlist.exists()  # built from the training split on first use
    assert [t.text for t in fast.translate(lines, beam=3)] == exact
    again = load(run_dir, overrides=["search.shortlist=5"])  # reuses the stored table
    assert [t.text for t in again.translate(lines, beam=3)] == exact


