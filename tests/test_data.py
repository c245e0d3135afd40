"""Corpora through `datasets` (both Hub layouts, builders, save_to_disk), tokenizer, batches."""

from __future__ import annotations

import datasets
import pytest

from seqattn.config import DataConfig, TokenizerConfig
from seqattn.data import (
    encode_corpus,
    load_corpus,
    make_batch,
    padding_fraction,
    sentence_batches,
    train_batches,
)
from seqattn.errors import UserError
from seqattn.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Tokenizer, train_tokenizer
from tests.conftest import toy_pairs, write_jsonl

PAIRS = [{"de": "Ein Hund läuft.", "en": "A dog runs."},
         {"de": "Zwei Katzen schlafen.", "en": "Two cats sleep."},
         {"de": "", "en": "Empty source."}]


def test_column_per_language_layout(tmp_path):
    folder = tmp_path / "m30k"
    write_jsonl(folder / "train.jsonl", PAIRS)
    write_jsonl(folder / "validation.jsonl", PAIRS[:1])
    corpus = load_corpus(DataConfig(path=str(folder)), "train")
    assert corpus.src[:2] == ["Ein Hund läuft.", "Zwei Katzen schlafen."]
    assert corpus.tgt[1] == "Two cats sleep."
    assert load_corpus(DataConfig(path=str(folder)), "validation").tgt == ["A dog runs."]


def test_translation_column_layout_via_json_builder(tmp_path):
    rows = [{"translation": {"de": p["de"], "en": p["en"]}} for p in PAIRS]
    path = write_jsonl(tmp_path / "wmt_like.jsonl", rows)
    cfg = DataConfig(path="json", data_files={"train": str(path)})
    corpus = load_corpus(cfg, "train")
    assert corpus.src[0] == "Ein Hund läuft." and corpus.tgt[0] == "A dog runs."
    reverse = load_corpus(DataConfig(path="json", data_files={"train": str(path)},
                                     src_lang="en", tgt_lang="de"), "train")
    assert reverse.src[0] == "A dog runs."


def test_save_to_disk_folder(tmp_path):
    ds = datasets.DatasetDict({
        "train": datasets.Dataset.from_list([{"translation": {"de": p["de"], "en": p["en"]}}
                                             for p in PAIRS]),
        "test": datasets.Dataset.from_list(PAIRS[:2]),
    })
    ds.save_to_disk(str(tmp_path / "saved"))
    cfg = DataConfig(path=str(tmp_path / "saved"))
    assert load_corpus(cfg, "train").tgt[1] == "Two cats sleep."
    assert load_corpus(cfg, "test").src == ["Ein Hund läuft.", "Zwei Katzen schlafen."]


def test_missing_split_column_language_list_what_exists(tmp_path):
    folder = tmp_path / "m30k"
    write_jsonl(folder / "train.jsonl", PAIRS)
    with pytest.raises(UserError, match=r"split 'dev' not in the dataset \(it has: train\)"):
        load_corpus(DataConfig(path=str(folder)), "dev")
    with pytest.raises(UserError, match=r"column 'fr' not in the dataset \(columns: de, en\)"):
        load_corpus(DataConfig(path=str(folder), tgt_lang="fr"), "train")
    path = write_jsonl(tmp_path / "t.jsonl", [{"translation": {"de": "a", "en": "b"}}])
    with pytest.raises(UserError, match=r"language 'fr' not in the translation column \(it has: de, en\)"):
        load_corpus(DataConfig(path="json", data_files=str(path), tgt_lang="fr"), "train")
    with pytest.raises(UserError, match="needs data files"):
        load_corpus(DataConfig(path="json"), "train")
    with pytest.raises(UserError, match="not found|cannot"):
        load_corpus(DataConfig(path=str(tmp_path / "nowhere")), "train")


@pytest.fixture
def toy_tokenizer(tmp_path) -> Tokenizer:
    pairs = toy_pairs(200)
    return train_tokenizer(TokenizerConfig(type="bpe", vocab_size=50, joint=False),
                           [p["src"] for p in pairs], [p["tgt"] for p in pairs],
                           tmp_path / "tok", "toy")


def test_tokenizer_round_trip_and_fixed_special_ids(toy_tokenizer, tmp_path):
    tok = toy_tokenizer
    sp = tok.tgt
    assert (sp.pad_id(), sp.unk_id(), sp.bos_id(), sp.eos_id()) == (PAD_ID, UNK_ID, BOS_ID, EOS_ID)
    text = "AX BE JA CI"
    ids = tok.encode_tgt([text])[0]
    assert tok.decode_tgt(ids + [EOS_ID, PAD_ID]) == text
    reloaded = Tokenizer.load(tmp_path / "tok")
    assert reloaded.encode_src(["ka lo mi"]) == tok.encode_src(["ka lo mi"])
    assert reloaded.fingerprint == tok.fingerprint and not reloaded.joint


def test_joint_tokenizer_shares_one_vocabulary(tmp_path):
    pairs = toy_pairs(200)
    tok = train_tokenizer(TokenizerConfig(type="unigram", vocab_size=40, joint=True),
                          [p["src"] for p in pairs], [p["tgt"] for p in pairs], tmp_path / "j", "x")
    assert tok.joint and tok.src is tok.tgt and tok.src_vocab_size == tok.tgt_vocab_size


def test_encoding_filters_and_is_cached(toy_tokenizer, tmp_path, monkeypatch):
    folder = tmp_path / "c"
    rows = toy_pairs(50) + [{"src": "", "tgt": "AX"}, {"src": "ka " * 40, "tgt": "AX"}]
    write_jsonl(folder / "train.jsonl", rows)
    corpus = load_corpus(DataConfig(path=str(folder), src_lang="src", tgt_lang="tgt"), "train")
    first = encode_corpus(corpus, toy_tokenizer, tmp_path / "cache", max_length=20)
    assert (len(first), first.dropped_empty, first.dropped_long) == (50, 1, 1)

    def fail(*_):
        raise AssertionError("encoded again instead of reading the cache")

    monkeypatch.setattr(toy_tokenizer, "encode_src", fail)
    second = encode_corpus(corpus, toy_tokenizer, tmp_path / "cache", max_length=20)
    assert [s.tolist() for s in second.src] == [s.tolist() for s in first.src]
    assert second.src_text == first.src_text
    limited = encode_corpus(corpus, toy_tokenizer.__class__(  # max_examples is part of the key
        toy_tokenizer.src, toy_tokenizer.tgt, False, toy_tokenizer.fingerprint), None,
        max_length=20, max_examples=10)
    assert len(limited) == 10


def test_token_batches_respect_budget_cover_everything_and_pad_little(toy_tokenizer):
    pairs = toy_pairs(500, seed=5, max_len=12)
    from seqattn.data import Corpus

    split = encode_corpus(Corpus([p["src"] for p in pairs], [p["tgt"] for p in pairs], "x"),
                          toy_tokenizer, None, max_length=100)
    for epoch in (0, 1):
        batches = train_batches(split, batch_tokens=300, seed=7, epoch=epoch)
        assert sorted(i for b in batches for i in b) == list(range(len(split)))
        for indices in batches:
            batch = make_batch(split, indices)
            assert batch.src.numel() <= 300 and batch.tgt_out.numel() <= 300
        assert padding_fraction(split, batches) < 0.1
    def listed(epoch):  # batches are int64 index arrays
        return [b.tolist() for b in train_batches(split, 300, 7, epoch)]

    assert listed(0) == listed(0)  # reproducible
    assert listed(0) != listed(1)  # reshuffled


def test_batch_tensors_and_masks(toy_tokenizer):
    from seqattn.data import Corpus

    split = encode_corpus(Corpus(["ka lo", "mi"], ["BE AX", "CI"], "y"), toy_tokenizer, None, 10)
    batch = make_batch(split, [0, 1])
    assert batch.tgt_in[:, 0].tolist() == [BOS_ID, BOS_ID]
    for row in range(2):
        n = int(batch.src_lengths[row])
        assert batch.src[row, n - 1] == EOS_ID and bool(batch.src_mask[row, :n].all())
        assert not bool(batch.src_mask[row, n:].any())
        t = int(batch.tgt_mask[row].sum())
        assert batch.tgt_out[row, t - 1] == EOS_ID
        assert batch.tgt_in[row, 1:t].tolist() == batch.tgt_out[row, : t - 1].tolist()
    assert batch.num_tgt_tokens == int(batch.tgt_mask.sum())


def test_evaluation_batches_remember_order():
    lengths = [3, 9, 1, 7, 5]
    batches = sentence_batches(lengths, batch_size=2)
    assert sorted(i for b in batches for i in b) == [0, 1, 2, 3, 4]
    assert batches[0] == [1, 3]
