"""`seqattn prepare` (seqattn/prepare.py): the tokenizer is trained once and reused while it matches."""

from __future__ import annotations

import pytest

from seqattn.config import config_from_dict
from seqattn.errors import UserError
from seqattn.prepare import describe, prepare
from seqattn.rundir import RunDir
from tests.conftest import tiny_config_dict


def test_prepare_then_reuse_then_retrain_on_a_new_tokenizer_config(toy_corpus, tmp_path):
    run, said = RunDir(tmp_path / "run"), []
    config = config_from_dict(tiny_config_dict(toy_corpus))
    first = prepare(config, run.root, say=said.append)
    assert run.tokenizer.is_dir() and run.cache.is_dir()
    assert len(said) == 1 and "training SentencePiece" in said[0]
    stats = first.stats
    assert stats["train_pairs"] == len(first.train) == 600 and stats["valid_pairs"] == len(first.valid) == 40
    assert stats["src_vocab"] == first.tokenizer.src_vocab_size and stats["batches_per_epoch"] > 0
    assert "train 600 pairs" in describe(stats)

    again = prepare(config, run.root, say=said.append)
    assert len(said) == 1  # matching config and data: the tokenizer is reused, not retrained
    assert again.tokenizer.fingerprint == first.tokenizer.fingerprint
    assert [a.tolist() for a in again.train.src[:5]] == [a.tolist() for a in first.train.src[:5]]

    joint = config_from_dict(tiny_config_dict(toy_corpus, tokenizer={"joint": True}))
    with pytest.raises(UserError, match="does not match this config"):
        prepare(joint, run.root, allow_retrain=False, say=said.append)
    retrained = prepare(joint, run.root, with_valid=False, say=said.append)
    assert len(said) == 2 and retrained.tokenizer.joint and retrained.valid is None
    assert retrained.tokenizer.fingerprint != first.tokenizer.fingerprint


def test_without_retraining_a_missing_tokenizer_is_a_user_error(toy_corpus, tmp_path):
    config = config_from_dict(tiny_config_dict(toy_corpus))
    with pytest.raises(UserError, match="tokenizer missing"):
        prepare(config, tmp_path / "run", allow_retrain=False, say=lambda *_: None)
