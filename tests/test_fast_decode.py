"""The fast decoding paths: the lexical shortlist and int8 weights, against exact fp32 search."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from seqattn.config import model_config
from seqattn.errors import UserError
from seqattn.models import build_model
from seqattn.quantize import quantize_int8
from seqattn.rundir import RunDir
from seqattn.search import decode
from seqattn.shortlist import build_table
from seqattn.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from tests.test_search import TINY_TRANSFORMER, VOCAB, sources, trained_copy_model


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


@pytest.mark.parametrize("kind", ["seq2seq", "bahdanau", "luong", "transformer"])
@pytest.mark.parametrize("tied", [False, True])
def test_int8_steps_stay_close_to_fp32(kind, tied):
    torch.manual_seed(0)
    model = build_model(model_config(kind=kind, embedding_size=32, rnn={"hidden_size": 64}, dropout=0.0,
                                    tie_embeddings=tied, transformer=TINY_TRANSFORMER), 50, 50).eval()
    fast = quantize_int8(model)
    assert any(type(m).__name__ == "Int8Linear" for m in fast.modules())
    assert not any(type(m).__name__ == "Int8Linear" for m in model.modules())  # a copy
    src = torch.randint(4, 50, (6, 7))
    lengths = torch.full((6,), 7)
    prev = torch.full((6,), BOS_ID)
    with torch.inference_mode():
        exact, state = model.step(prev, model.encode(src, lengths))
        approx, fast_state = fast.step(prev, fast.encode(src, lengths))
        for _ in range(3):  # a few steps: the error must not grow out of hand
            prev = exact.argmax(-1)
            exact, state = model.step(prev, state)
            approx, fast_state = fast.step(prev, fast_state)
    assert approx.shape == exact.shape
    assert (approx.exp().sum(-1) - 1).abs().max() < 1e-4
    # log-probabilities; int8 weights, ~1% error per product (a Transformer chains more of them)
    assert (approx - exact).abs().max() < (0.1 if kind == "transformer" else 0.05)


def test_int8_decoding_agrees_with_fp32(model):
    srcs = sources(12)
    exact, fast = run(model, srcs, 4), run(quantize_int8(model), srcs, 4)
    same = sum(a[0].tokens == b[0].tokens for a, b in zip(exact, fast))
    assert same >= 8  # of 12: this briefly trained model has near-ties that 1% error may flip
    gaps = [abs(a[0].score - b[0].score) for a, b in zip(exact, fast)]
    assert sum(gaps) / len(gaps) < 0.1


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


def test_shortlist_per_source_is_bounded(tiny_config):
    from seqattn.config import load_config

    with pytest.raises(UserError, match="search.shortlist_per_source"):
        load_config(tiny_config(search={"shortlist_per_source": 101}))
    with pytest.raises(UserError, match="search.precision"):
        load_config(tiny_config(search={"precision": "int4"}))


def test_a_frozen_token_table_gives_the_same_steps(model):
    import copy

    if not hasattr(model.decoder, "freeze_token_table"):
        pytest.skip("only RNN decoders project token embeddings to gates")
    frozen = copy.deepcopy(model)
    frozen.decoder.freeze_token_table()
    src = torch.randint(4, VOCAB, (5, 6))
    lengths = torch.full((5,), 6)
    prev = torch.randint(4, VOCAB, (5,))
    with torch.inference_mode():
        exact, _ = model.step(prev, model.encode(src, lengths))
        looked_up, _ = frozen.step(prev, frozen.encode(src, lengths))
    torch.testing.assert_close(looked_up, exact)
    frozen.train()  # teacher forcing never uses the table: it has no token ids to look up
    batch_logits, _ = frozen.teacher_forced(src, lengths, src)
    assert batch_logits.requires_grad


def test_evaluate_records_the_fast_decoder(trained_run, tmp_path):
    from seqattn.evaluate import evaluate

    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    exact = evaluate(run_dir)
    fast = evaluate(run_dir, overrides=["search.shortlist=5", "search.precision=int8"])
    assert exact["decoder"] == {"shortlist": 0, "shortlist_per_source": 20, "precision": "fp32"}
    assert fast["decoder"] == {"shortlist": 5, "shortlist_per_source": 20, "precision": "int8"}
    assert fast["parameters"] == exact["parameters"]  # the trained model's, not the int8 copy's
    assert fast["ppl"] == pytest.approx(exact["ppl"], rel=0.05)
    assert abs(fast["bleu"] - exact["bleu"]) < 5


def test_int8_is_refused_off_the_cpu(model):
    from seqattn.quantize import model_for_decoding

    assert model_for_decoding(model, "fp32", torch.device("cuda")) is model
    with pytest.raises(UserError, match="CPU only"):
        model_for_decoding(model, "int8", torch.device("cuda"))
