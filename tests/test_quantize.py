"""int8 weights for CPU decoding (seqattn/quantize.py), against the fp32 model."""

from __future__ import annotations

import pytest
import torch

from seqattn.config import model_config
from seqattn.errors import UserError
from seqattn.models import build_model
from seqattn.quantize import quantize_int8
from seqattn.search import decode
from seqattn.tokenizer import BOS_ID
from tests.test_search import TINY_TRANSFORMER, sources, trained_copy_model


def run(model, srcs, beam):
    return decode(model, srcs, beam, alpha=1.0, max_length_ratio=1.5, max_length_offset=3,
                  batch_size=4, device=torch.device("cpu"))


@pytest.fixture(scope="module", params=["seq2seq", "bahdanau", "luong", "transformer"])
def model(request):
    return trained_copy_model(request.param)


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


def test_int8_is_refused_off_the_cpu(model):
    from seqattn.quantize import model_for_decoding

    assert model_for_decoding(model, "fp32", torch.device("cuda")) is model
    with pytest.raises(UserError, match="CPU only"):
        model_for_decoding(model, "int8", torch.device("cuda"))
