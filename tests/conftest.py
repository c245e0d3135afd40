"""Shared fixtures: tiny corpora made on the spot (never the network), tiny configs, tiny runs."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
import yaml

# Tiny models run fastest on one thread, and the suite must not fight other work for cores.
torch.set_num_threads(1)

SHARED_MULTI30K = Path(__file__).resolve().parents[2] / "shared" / "data" / "multi30k"

# A toy "language pair": each source word has one target word; the target is the translation
# read in reverse order. Learnable in seconds, and it needs the whole source (attention helps).
SRC_WORDS = ["ka", "lo", "mi", "ne", "pu", "ri", "so", "ta", "vu", "ze"]
TGT_WORDS = ["AX", "BE", "CI", "DO", "EU", "FA", "GI", "HO", "IU", "JA"]
LEXICON = dict(zip(SRC_WORDS, TGT_WORDS))


def toy_pairs(n: int, seed: int = 0, min_len: int = 2, max_len: int = 6) -> list[dict]:
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        words = [rng.choice(SRC_WORDS) for _ in range(rng.randint(min_len, max_len))]
        pairs.append({"src": " ".join(words),
                      "tgt": " ".join(LEXICON[w] for w in reversed(words))})
    return pairs


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def toy_corpus(tmp_path: Path) -> Path:
    """A local dataset folder in the bentrevett/multi30k layout: one column per language."""
    folder = tmp_path / "toy"
    write_jsonl(folder / "train.jsonl", toy_pairs(600, seed=1))
    write_jsonl(folder / "validation.jsonl", toy_pairs(40, seed=2))
    write_jsonl(folder / "test.jsonl", toy_pairs(40, seed=3))
    return folder


def tiny_config_dict(data_path: Path, **sections) -> dict:
    """A config for a model small enough to train in seconds on the toy corpus."""
    config = {
        "data": {"path": str(data_path), "src_lang": "src", "tgt_lang": "tgt", "max_length": 30},
        "tokenizer": {"type": "bpe", "vocab_size": 60, "joint": False},
        "model": {"kind": "bahdanau", "embedding_size": 16, "dropout": 0.0, "rnn": {"hidden_size": 32}},
        "train": {"batch_tokens": 400, "max_steps": 20, "log_every": 5, "valid_every": 10,
                  "save_every": 5, "label_smoothing": 0.0, "lr": 0.01},
        "search": {"beam_size": 3, "batch_size": 16},
    }
    for section, values in sections.items():
        merge(config.setdefault(section, {}), values)
    return config


def merge(into: dict, values: dict) -> dict:
    """Nested update: sections given as dicts (model={"rnn": {...}}) keep their other keys."""
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        else:
            into[key] = value
    return into


@pytest.fixture
def tiny_config(tmp_path: Path, toy_corpus: Path):
    """A function writing a tiny YAML config (with section overrides) and returning its path."""

    def make(name: str = "tiny", **sections) -> Path:
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(tiny_config_dict(toy_corpus, **sections)), encoding="utf-8")
        return path

    return make


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """One tiny trained bahdanau run, shared by the tests that only read it."""
    from seqattn.config import config_from_dict
    from seqattn.train import train

    root = tmp_path_factory.mktemp("trained")
    folder = root / "toy"
    write_jsonl(folder / "train.jsonl", toy_pairs(600, seed=1))
    write_jsonl(folder / "validation.jsonl", toy_pairs(40, seed=2))
    write_jsonl(folder / "test.jsonl", toy_pairs(40, seed=3))
    config = config_from_dict(tiny_config_dict(folder, train={"max_steps": 60}))
    run_dir = root / "run"
    train(config, run_dir, say=lambda *_: None)
    return run_dir
