"""The model factory (seqattn/models/__init__.py) and the protocol every kind it builds keeps:
step == teacher forcing, shapes, batch invariance, the uniform start, learning to copy.

Each part has its own file: test_attention.py, test_rnn.py, test_output.py, test_transformer.py, ..."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from seqattn.config import ModelConfig, model_config
from seqattn.models import MODEL_KINDS, build_model
from seqattn.tokenizer import BOS_ID, EOS_ID, PAD_ID

VOCAB = 23
TINY_TRANSFORMER = {"encoder_layers": 2, "decoder_layers": 2, "heads": 2, "ff_size": 24,
                    "attention_dropout": 0.0}
VARIANTS = [
    dict(kind="seq2seq"),
    dict(kind="seq2seq", rnn=dict(context_every_step=True, cell="gru")),
    dict(kind="bahdanau"),
    dict(kind="bahdanau", rnn=dict(cell="gru", num_layers=2)),
    dict(kind="luong", attention=dict(score="dot")),
    dict(kind="luong", attention=dict(score="general", input_feeding=False)),
    dict(kind="luong", attention=dict(score="concat"), rnn=dict(num_layers=2, bidirectional=False)),
    dict(kind="luong", tie_embeddings=True, share_embeddings=True),
    dict(kind="transformer", transformer=TINY_TRANSFORMER),
    dict(kind="transformer", transformer={**TINY_TRANSFORMER, "norm": "post", "positions": "learned"},
         tie_embeddings=True, share_embeddings=True),
]


def tiny(**overrides) -> ModelConfig:
    rnn = {"hidden_size": 16, **overrides.pop("rnn", {})}
    return model_config(**{"embedding_size": 12, "dropout": 0.0, "rnn": rnn, **overrides})


def make_inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(4, VOCAB, (3, 7), generator=g)
    lengths = torch.tensor([7, 4, 6])
    for row, n in enumerate(lengths.tolist()):
        src[row, n - 1] = EOS_ID
        src[row, n:] = PAD_ID
    tgt_in = torch.randint(4, VOCAB, (3, 5), generator=g)
    tgt_in[:, 0] = BOS_ID
    return src, lengths, tgt_in


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(
    f"{x}" for x in v.values() if not isinstance(x, dict)) + ("-" + str(len(str(v))) if len(v) > 1 else ""))
def test_shapes_and_step_matches_teacher_forcing(variant):
    torch.manual_seed(0)
    model = build_model(tiny(**variant), VOCAB, VOCAB).eval()
    src, lengths, tgt_in = make_inputs()
    logits, attention = model.teacher_forced(src, lengths, tgt_in)
    assert logits.shape == (3, 5, VOCAB)
    assert (attention is None) == (not model.has_attention)
    state = model.encode(src, lengths)
    for t in range(tgt_in.size(1)):
        log_probs, state = model.step(tgt_in[:, t], state)
        assert log_probs.shape == (3, VOCAB)
        torch.testing.assert_close(log_probs, logits[:, t].log_softmax(-1), atol=1e-5, rtol=1e-4)
        if model.has_attention:
            torch.testing.assert_close(state.attention, attention[:, t])


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(
    f"{x}" for x in v.values() if not isinstance(x, dict)) + ("-" + str(len(str(v))) if len(v) > 1 else ""))
def test_output_is_the_same_alone_or_padded_in_a_batch(variant):
    torch.manual_seed(1)
    model = build_model(tiny(**variant), VOCAB, VOCAB).eval()
    src, lengths, tgt_in = make_inputs(seed=3)
    batched, _ = model.teacher_forced(src, lengths, tgt_in)
    row = 1  # the shortest: padded inside the batch
    n = int(lengths[row])
    alone, _ = model.teacher_forced(src[row : row + 1, :n], lengths[row : row + 1],
                                    tgt_in[row : row + 1])
    torch.testing.assert_close(alone[0], batched[row], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("kind", ["seq2seq", "bahdanau", "luong", "transformer"])
@pytest.mark.parametrize("tied", [False, True])
def test_a_fresh_model_starts_near_the_uniform_loss(kind, tied):
    """An untrained model's loss is about log V, tied output layer or not (a tied matrix at
    nn.Embedding's N(0, 1) scale would start far above it)."""
    vocab, batch = 2000, 32
    torch.manual_seed(0)
    model = build_model(model_config(kind=kind, embedding_size=128, rnn={"hidden_size": 128},
                                     tie_embeddings=tied, share_embeddings=tied), vocab, vocab)
    src = torch.randint(4, vocab, (batch, 9))
    tgt = torch.randint(4, vocab, (batch, 8))
    tgt[:, 0] = BOS_ID
    state = model.encode(src, torch.full((batch,), 9))
    log_probs, _ = model.step(tgt[:, 0], state)
    loss = -log_probs.gather(1, tgt[:, 1:2]).mean().item()
    # Within 1 nat: logits of unit spread (a Transformer's tied output layer reading layer-normed
    # vectors) cost about half a nat; a tied matrix at N(0, 1) would cost about emb / 2 = 64.
    assert abs(loss - math.log(vocab)) < 1.0, loss


def test_factory_covers_every_kind_in_the_config():
    kinds = dataclasses.fields(ModelConfig)[0].type
    assert set(MODEL_KINDS) == {"seq2seq", "bahdanau", "luong", "transformer"}
    assert all(kind in str(kinds) for kind in MODEL_KINDS)


def copy_task_batch(generator, batch=32, length=5):
    body = torch.randint(4, 12, (batch, length), generator=generator)
    src = torch.cat([body, torch.full((batch, 1), EOS_ID)], dim=1)
    tgt_in = torch.cat([torch.full((batch, 1), BOS_ID), body], dim=1)
    tgt_out = torch.cat([body, torch.full((batch, 1), EOS_ID)], dim=1)
    return src, torch.full((batch,), length + 1), tgt_in, tgt_out


@pytest.mark.parametrize("kind", ["seq2seq", "bahdanau", "luong", "transformer"])
def test_tiny_model_learns_to_copy(kind):
    """A few hundred steps on CPU: every kind copies 5-token sequences it has not seen."""
    torch.manual_seed(0)
    model = build_model(tiny(kind=kind, embedding_size=32, rnn=dict(hidden_size=64),
                             transformer={**TINY_TRANSFORMER, "ff_size": 64}), 12, 12)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        src, lengths, tgt_in, tgt_out = copy_task_batch(g)
        logits, _ = model.teacher_forced(src, lengths, tgt_in)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), tgt_out.flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    src, lengths, tgt_in, tgt_out = copy_task_batch(torch.Generator().manual_seed(99), batch=64)
    with torch.no_grad():
        logits, _ = model.teacher_forced(src, lengths, tgt_in)
    accuracy = (logits.argmax(-1) == tgt_out).float().mean().item()
    assert accuracy > 0.9, f"{kind} copy accuracy {accuracy:.2f}"


