"""The memory-mapped training store: same ids as in-memory encoding, any number of processes,
rebuilt when damaged, nothing half-written; the tokenizer's random sample; bad data files."""

from __future__ import annotations

import json
import subprocess
import sys

import datasets
import numpy as np
import pytest

from seqattn import corpus_store
from seqattn.config import DataConfig, TokenizerConfig, config_from_dict
from seqattn.corpus_store import TokenSequences, open_store, sample_rows
from seqattn.data import Corpus, encode_corpus, encode_source, open_corpus
from seqattn.errors import UserError
from seqattn.prepare import prepare
from seqattn.tokenizer import train_tokenizer
from tests.conftest import tiny_config_dict, toy_pairs, write_jsonl


@pytest.fixture
def tokenizer(tmp_path):
    pairs = toy_pairs(200)
    tok = train_tokenizer(TokenizerConfig(type="bpe", vocab_size=50, joint=False),
                          [p["src"] for p in pairs], [p["tgt"] for p in pairs], tmp_path / "tok", "t")
    return tok, tmp_path / "tok"


@pytest.fixture
def rows():
    return toy_pairs(300, seed=4) + [{"src": "", "tgt": "AX"}, {"src": "ka " * 40, "tgt": "AX"}]


def _store_split(tmp_path, tokenizer, rows, num_proc, layout="columns"):
    folder = tmp_path / f"data-{layout}"
    if layout == "columns":
        write_jsonl(folder / "train.jsonl", rows)
    else:
        write_jsonl(folder / "train.jsonl", [{"translation": r} for r in rows])
    source = open_corpus(DataConfig(path=str(folder), src_lang="src", tgt_lang="tgt"), "train")
    tok, tok_folder = tokenizer
    return encode_source(source, tok, tok_folder, tmp_path / f"cache{num_proc}", 20, num_proc)


@pytest.mark.parametrize("layout", ["columns", "translation"])
def test_store_holds_what_in_memory_encoding_gives(tmp_path, tokenizer, rows, layout):
    stored = _store_split(tmp_path, tokenizer, rows, 1, layout)
    memory = encode_corpus(Corpus([r["src"] for r in rows], [r["tgt"] for r in rows], "x"),
                           tokenizer[0], None, max_length=20)
    assert isinstance(stored.src, TokenSequences) and stored.src_text == []
    assert (len(stored), stored.dropped_empty, stored.dropped_long) == (300, 1, 1)
    assert [s.tolist() for s in stored.src] == [s.tolist() for s in memory.src]
    assert [t.tolist() for t in stored.tgt] == [t.tolist() for t in memory.tgt]
    assert stored.src_lengths().tolist() == [len(s) for s in memory.src]
    assert [s.tolist() for s in stored.src[10:13]] == [s.tolist() for s in memory.src[10:13]]
    assert stored.src[-1].tolist() == memory.src[-1].tolist()


def test_two_processes_write_the_same_store_as_one(tmp_path, tokenizer, rows, monkeypatch):
    monkeypatch.setattr(corpus_store, "ROWS_PER_PROCESS", 150)  # 302 rows: two workers
    one = _store_split(tmp_path, tokenizer, rows, 1)
    many = _store_split(tmp_path, tokenizer, rows, 4)
    folders = [next(p for p in (tmp_path / name).iterdir()) for name in ("cache1", "cache4")]
    assert json.loads((folders[1] / "meta.json").read_text())["processes"] == 2
    for name in ("src.tokens", "tgt.tokens", "src.offsets.npy", "rows.npy"):
        assert (folders[0] / name).read_bytes() == (folders[1] / name).read_bytes(), name
    assert (many.dropped_empty, many.dropped_long) == (one.dropped_empty, one.dropped_long)


def test_a_damaged_store_is_rebuilt_and_a_failed_build_leaves_nothing(tmp_path, tokenizer, rows):
    first = [t.tolist() for t in _store_split(tmp_path, tokenizer, rows, 1).tgt]
    folder = next((tmp_path / "cache1").iterdir())
    with open(folder / "tgt.tokens", "r+b") as handle:  # cut short, as by a full disk
        handle.truncate(10)
    identity = json.loads((folder / "meta.json").read_text())["identity"]
    assert open_store(folder, identity) is None
    again = _store_split(tmp_path, tokenizer, rows, 1)
    assert [t.tolist() for t in again.tgt] == first
    source = open_corpus(DataConfig(path=str(tmp_path / "data-columns"), src_lang="src",
                                    tgt_lang="tgt"), "train")
    with pytest.raises(UserError, match="tokenizer missing"):  # fails inside the encoder
        encode_source(source, tokenizer[0], tmp_path / "no-tokenizer", tmp_path / "c2", 20, 1)
    assert list((tmp_path / "c2").iterdir()) == []


def test_tokenizer_trains_on_a_random_sample_of_the_stated_size(toy_corpus, tmp_path, monkeypatch):
    chosen = sample_rows(1000, 100, seed=0)
    assert len(set(chosen.tolist())) == 100 and chosen.tolist() == sorted(chosen.tolist())
    assert chosen.tolist() != list(range(100)) and chosen.max() > 500  # not the first rows
    assert (sample_rows(1000, 100, 0) == chosen).all() and len(sample_rows(5, 100, 0)) == 5
    seen = []
    from seqattn import tokenizer as tokenizer_module

    real = tokenizer_module._train_one
    monkeypatch.setattr(tokenizer_module, "_train_one",
                        lambda texts, cfg, prefix: real(seen.append(list(texts)) or seen[-1], cfg, prefix))
    config = config_from_dict(tiny_config_dict(toy_corpus, tokenizer={
        "joint": True, "input_sentence_size": 100}))
    prepare(config, tmp_path / "run", with_valid=False, say=lambda *_: None)
    assert len(seen) == 1 and len(seen[0]) == 100  # 50 pairs, both sides, of 600
    train_texts = {p["src"] for p in toy_pairs(600, seed=1)}
    sources = seen[0][:50]  # all sources, then all targets
    assert set(sources) <= train_texts and sources != [p["src"] for p in toy_pairs(50, seed=1)]


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "seqattn", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=120)


def test_empty_or_missing_data_files_are_one_error_line(tmp_path):
    """Before: an empty json train file ended in a StopIteration traceback (exit 1)."""
    (tmp_path / "empty.jsonl").write_text("")
    dev = write_jsonl(tmp_path / "dev.jsonl", [{"de": "a", "en": "b"}])
    cases = {"empty": {"train": str(tmp_path / "empty.jsonl"), "validation": str(dev)},
             "missing shard": {"train": [str(dev), str(tmp_path / "shard-2.jsonl")],
                               "validation": str(dev)}}
    for name, files in cases.items():
        config = tmp_path / f"{name.replace(' ', '_')}.yaml"
        config.write_text(json.dumps({"data": {"path": "json", "data_files": files,
                                               "src_lang": "de", "tgt_lang": "en"}}))
        result = _cli("prepare", str(config), "--run-dir", str(tmp_path / "run"), cwd=tmp_path)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1, (name, result.stderr)
        assert lines[0].startswith("error: data file ") and "Traceback" not in result.stderr
        assert not (tmp_path / "run").exists()


def test_a_file_with_only_blank_lines_is_a_user_error(tmp_path):
    (tmp_path / "blank.jsonl").write_text("\n\n")
    cfg = DataConfig(path="json", data_files={"train": str(tmp_path / "blank.jsonl")})
    with pytest.raises(UserError, match="data file is empty"):
        open_corpus(cfg, "train")


def test_token_sequences_index_like_a_list():
    seqs = TokenSequences(np.arange(6, dtype=np.uint16), np.array([0, 2, 2, 6]))
    assert len(seqs) == 3 and seqs[1].tolist() == [] and seqs[-1].tolist() == [2, 3, 4, 5]
    assert [s.tolist() for s in seqs[1:]] == [[], [2, 3, 4, 5]] and len(seqs[3:1]) == 0
    assert seqs.lengths.tolist() == [2, 0, 4]
    with pytest.raises(IndexError):
        seqs[3]


def test_saved_dataset_is_stored_without_its_text(tmp_path, tokenizer):
    ds = datasets.Dataset.from_list([{"translation": {"src": p["src"], "tgt": p["tgt"]}}
                                     for p in toy_pairs(50)])
    ds.save_to_disk(str(tmp_path / "saved"))
    source = open_corpus(DataConfig(path=str(tmp_path / "saved"), src_lang="src", tgt_lang="tgt"),
                         "train")
    split = encode_source(source, tokenizer[0], tokenizer[1], tmp_path / "c", 20, 0)
    assert len(split) == 50 and split.src_text == []


def test_sentencepiece_in_a_child_process_makes_the_same_model(tmp_path):
    """Big samples train in a spawned child (its memory all returned); the model is the same."""
    from seqattn.tokenizer import train_tokenizer_on_pairs

    write_jsonl(tmp_path / "d" / "train.jsonl", toy_pairs(300))
    source = open_corpus(DataConfig(path=str(tmp_path / "d"), src_lang="src", tgt_lang="tgt"),
                         "train")
    config = TokenizerConfig(type="bpe", vocab_size=40, joint=True)
    here = train_tokenizer_on_pairs(config, source.sample(200, 0), tmp_path / "a", "x")
    child = train_tokenizer_on_pairs(config, source.sample(200, 0), tmp_path / "b", "x",
                                     separate_process=True)
    pieces = [[tok.src.id_to_piece(i) for i in range(tok.src_vocab_size)] for tok in (here, child)]
    assert pieces[0] == pieces[1]  # (the fingerprints differ: the model file names its folder)
