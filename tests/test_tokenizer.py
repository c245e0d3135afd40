"""SentencePiece subwords (seqattn/tokenizer.py): fixed special ids, round trips, joint or per side."""

from __future__ import annotations

import json

import pytest

from seqattn.config import TokenizerConfig
from seqattn.errors import UserError
from seqattn.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Tokenizer, read_meta, train_tokenizer
from tests.conftest import toy_pairs

PAIRS = toy_pairs(300, seed=5)
SRC, TGT = [p["src"] for p in PAIRS], [p["tgt"] for p in PAIRS]


def trained(folder, joint, vocab_size=60):
    config = TokenizerConfig(type="bpe", vocab_size=vocab_size, joint=joint)
    return train_tokenizer(config, SRC, TGT, folder, data_identity="toy")


@pytest.fixture(scope="module")
def per_side(tmp_path_factory):
    return trained(tmp_path_factory.mktemp("tok") / "tokenizer", joint=False)


def test_special_ids_are_the_same_in_every_run(per_side, tmp_path):
    joint = trained(tmp_path / "joint", joint=True)
    assert (PAD_ID, UNK_ID, BOS_ID, EOS_ID) == (0, 1, 2, 3)
    for model in (per_side.src, per_side.tgt, joint.src):
        assert (model.pad_id(), model.unk_id(), model.bos_id(), model.eos_id()) == (0, 1, 2, 3)
    assert read_meta(tmp_path / "joint")["special_ids"] == {"pad": 0, "unk": 1, "bos": 2, "eos": 3}


def test_encode_then_decode_gives_the_text_back(per_side):
    for text in TGT[:20]:
        ids = per_side.encode_tgt([text])[0]
        assert all(i > EOS_ID for i in ids)  # no specials inside a sentence
        assert per_side.decode_tgt(ids) == text
        assert per_side.decode_tgt([BOS_ID, *ids, EOS_ID, PAD_ID]) == text  # specials are dropped
    ids = per_side.encode_src([SRC[0]])[0]
    assert "".join(per_side.src_pieces(ids)).replace("\u2581", " ").strip() == SRC[0]


def test_joint_is_one_model_for_both_sides_and_per_side_is_two(per_side, tmp_path):
    joint = trained(tmp_path / "joint", joint=True)
    assert joint.joint and joint.src is joint.tgt
    assert joint.src_vocab_size == joint.tgt_vocab_size
    assert UNK_ID not in joint.encode_src([TGT[0]])[0]  # one vocabulary covers both languages
    assert not per_side.joint and per_side.src is not per_side.tgt
    assert UNK_ID in per_side.encode_src([TGT[0]])[0]  # the source model never saw the target side
    assert read_meta(tmp_path / "joint")["files"] == ["joint.model"]
    loaded = Tokenizer.load(tmp_path / "joint")
    assert loaded.joint and loaded.fingerprint == joint.fingerprint


def test_the_fingerprint_changes_with_the_model(per_side, tmp_path):
    smaller = trained(tmp_path / "small", joint=False, vocab_size=40)
    assert smaller.tgt_vocab_size < per_side.tgt_vocab_size
    assert smaller.fingerprint != per_side.fingerprint
    assert trained(tmp_path / "joint", joint=True).fingerprint != per_side.fingerprint


def test_retraining_replaces_the_folder_whole(tmp_path):
    folder = tmp_path / "tokenizer"
    trained(folder, joint=False)
    trained(folder, joint=True)
    assert sorted(p.name for p in folder.iterdir()) == ["joint.model", "tokenizer.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["tokenizer"]  # no work folder left


def test_a_missing_or_broken_tokenizer_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="tokenizer missing .*seqattn prepare"):
        Tokenizer.load(tmp_path / "nowhere")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "tokenizer.json").write_text(json.dumps({"files": ["gone.model"]}))
    with pytest.raises(UserError, match="tokenizer unreadable"):
        Tokenizer.load(tmp_path / "broken")
    assert read_meta(tmp_path / "nowhere") is None
