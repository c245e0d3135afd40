"""`data.streaming: true` on local json and parquet files through load_dataset(streaming=True):
every pair once per epoch, token budgets, ranks disjoint, exact resume, bad sources."""

from __future__ import annotations

import json

import datasets
import pytest
import torch

from seqattn.config import config_from_dict
from seqattn.errors import UserError
from seqattn.prepare import prepare
from seqattn.train import train
from tests.conftest import tiny_config_dict, toy_pairs, write_jsonl


def quiet(*_):
    pass


def _config(folder, **sections):
    values = tiny_config_dict(folder, **sections)
    values["data"].update({"streaming": True, "shuffle_buffer": 100})
    return config_from_dict(values)


def _parquet_corpus(folder):
    folder.mkdir(parents=True)
    for split, n, seed in (("train", 600, 1), ("validation", 40, 2)):
        datasets.Dataset.from_list(toy_pairs(n, seed=seed)).to_parquet(str(folder / f"{split}.parquet"))
    return folder


def _pairs_of(batch, tokenizer):
    rows = []
    for src, tgt in zip(batch.src.tolist(), batch.tgt_out.tolist()):
        rows.append((tokenizer.src.decode([i for i in src if i > 3]),
                     tokenizer.tgt.decode([i for i in tgt if i > 3])))
    return rows


@pytest.mark.parametrize("fmt", ["json", "parquet"])
def test_an_epoch_covers_every_pair_once_within_budget(toy_corpus, tmp_path, fmt):
    folder = toy_corpus if fmt == "json" else _parquet_corpus(tmp_path / "pq")
    prepared = prepare(_config(folder), tmp_path / "run", say=quiet)
    stream, tok = prepared.train, prepared.tokenizer
    assert stream.batches_per_epoch(400, 42) is None and len(prepared.valid) == 40
    epochs = []
    for epoch in (0, 1):
        batches = [b for _, b in stream.epoch_batches(400, 42, epoch)]
        assert all(b.src.numel() <= 400 and b.tgt_out.numel() <= 400 for b in batches)
        epochs.append([pair for b in batches for pair in _pairs_of(b, tok)])
    expected = sorted((p["src"], p["tgt"]) for p in toy_pairs(600, seed=1))
    assert sorted(epochs[0]) == expected == sorted(epochs[1])
    assert epochs[0] != epochs[1]  # reshuffled each epoch


def test_ranks_read_disjoint_halves(toy_corpus, tmp_path, monkeypatch):
    seen = []
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        prepared = prepare(_config(toy_corpus), tmp_path / "run", with_valid=False, say=quiet)
        assert (prepared.train.rank, prepared.train.world) == (rank, 2)
        seen.append([p for _, b in prepared.train.epoch_batches(400, 42, 0)
                     for p in _pairs_of(b, prepared.tokenizer)])
    expected = sorted((p["src"], p["tgt"]) for p in toy_pairs(600, seed=1))
    assert sorted(seen[0] + seen[1]) == expected and abs(len(seen[0]) - len(seen[1])) <= 1


def test_starting_at_batch_k_gives_the_rest_of_the_epoch(toy_corpus, tmp_path):
    stream = prepare(_config(toy_corpus), tmp_path / "run", with_valid=False, say=quiet).train
    whole = [(i, b.tgt_out.tolist()) for i, b in stream.epoch_batches(400, 42, 3)]
    tail = [(i, b.tgt_out.tolist()) for i, b in stream.epoch_batches(400, 42, 3, start=7)]
    assert tail == whole[7:]


def test_streaming_training_resumes_exactly(toy_corpus, tmp_path):
    def config(max_steps):
        return _config(toy_corpus, train={"max_steps": max_steps, "log_every": 1,
                                          "valid_every": 50, "save_every": 5})

    train(config(14), tmp_path / "straight", say=quiet)
    train(config(9), tmp_path / "split", say=quiet)  # stops mid-epoch, mid-bucket
    train(config(14), tmp_path / "split", resume=True, say=quiet)
    straight = torch.load(tmp_path / "straight/checkpoints/last.pt", weights_only=True)
    resumed = torch.load(tmp_path / "split/checkpoints/last.pt", weights_only=True)
    assert resumed["progress"]["step"] == 14
    for key, value in straight["model"].items():
        torch.testing.assert_close(resumed["model"][key], value)


def test_the_tokenizer_trains_on_the_streams_first_pairs(toy_corpus, tmp_path, monkeypatch):
    from seqattn import tokenizer as tokenizer_module

    seen = []
    real = tokenizer_module._train_one
    monkeypatch.setattr(tokenizer_module, "_train_one",
                        lambda texts, cfg, prefix: real(seen.append(list(texts)) or seen[-1], cfg, prefix))
    config = _config(toy_corpus, tokenizer={"input_sentence_size": 30})
    prepare(config, tmp_path / "run", with_valid=False, say=quiet)
    assert seen[0] == [p["src"] for p in toy_pairs(30, seed=1)]


def test_bad_streaming_sources_are_one_line_errors(toy_corpus, tmp_path):
    write_jsonl(tmp_path / "nolang" / "train.jsonl", [{"de": "a", "en": "b"}])
    with pytest.raises(UserError, match=r"column 'src' not in the dataset \(columns: de, en\)"):
        prepare(_config(tmp_path / "nolang"), tmp_path / "r1", with_valid=False, say=quiet)
    (tmp_path / "empty.jsonl").write_text("")
    files = {"json-empty": {"train": str(tmp_path / "empty.jsonl")},
             "json-missing": {"train": [str(toy_corpus / "train.jsonl"), str(tmp_path / "x.jsonl")]}}
    for name, data_files in files.items():
        values = tiny_config_dict(toy_corpus)
        values["data"].update({"streaming": True, "path": "json", "data_files": data_files})
        with pytest.raises(UserError, match="data file is empty|data file not found"):
            prepare(config_from_dict(values), tmp_path / name, with_valid=False, say=quiet)
        assert not (tmp_path / name).exists()
    bad = tmp_path / "bad"
    write_jsonl(bad / "train.jsonl", toy_pairs(50))
    values = tiny_config_dict(bad)
    values["data"]["streaming"] = True
    stream = prepare(config_from_dict(values), tmp_path / "r2", with_valid=False, say=quiet).train
    with (bad / "train.jsonl").open("a") as handle:  # the shard changes under a running job
        handle.write("{not json\n")
    with pytest.raises(UserError, match="cannot (read the stream|load dataset)"):
        list(stream.epoch_batches(400, 42, 0))
    (bad / "train.jsonl").unlink()  # or goes away
    with pytest.raises(UserError, match="cannot|not found"):
        list(stream.epoch_batches(400, 42, 0))


def test_streaming_with_a_decaying_schedule_needs_a_step_limit(toy_corpus):
    values = tiny_config_dict(toy_corpus, train={"schedule": "cosine", "max_steps": None})
    values["data"]["streaming"] = True
    with pytest.raises(UserError, match="needs train.max_steps"):
        config_from_dict(values)
    json.dumps(values)  # the config stays plain data
