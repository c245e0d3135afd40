"""SentencePiece subwords: training on the training split, fixed special ids, joint or per side.

Special ids are the same in every run: pad 0, unk 1, bos 2, eos 3.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict
from pathlib import Path

import sentencepiece as spm

from seqattn.config import TokenizerConfig
from seqattn.errors import UserError
from seqattn.files import atomic_write_text

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
META_FILE = "tokenizer.json"


class Tokenizer:
    """Source and target SentencePiece models (the same object when the vocabulary is joint)."""

    def __init__(self, src: spm.SentencePieceProcessor, tgt: spm.SentencePieceProcessor,
                 joint: bool, fingerprint: str) -> None:
        self.src, self.tgt, self.joint, self.fingerprint = src, tgt, joint, fingerprint

    @property
    def src_vocab_size(self) -> int:
        return self.src.get_piece_size()

    @property
    def tgt_vocab_size(self) -> int:
        return self.tgt.get_piece_size()

    def encode_src(self, texts: list[str]) -> list[list[int]]:
        return self.src.encode(texts)

    def encode_tgt(self, texts: list[str]) -> list[list[int]]:
        return self.tgt.encode(texts)

    def decode_tgt(self, ids: list[int]) -> str:
        return self.tgt.decode([i for i in ids if i > EOS_ID])

    def src_pieces(self, ids: list[int]) -> list[str]:
        return [self.src.id_to_piece(i) for i in ids]

    def tgt_pieces(self, ids: list[int]) -> list[str]:
        return [self.tgt.id_to_piece(i) for i in ids]

    @classmethod
    def load(cls, folder: Path) -> Tokenizer:
        folder = Path(folder)
        meta_path = folder / META_FILE
        if not meta_path.exists():
            raise UserError("tokenizer missing", str(folder),
                            "run 'seqattn prepare CONFIG' (or train) to create it")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            files = [folder / name for name in meta["files"]]
            procs = [spm.SentencePieceProcessor(model_file=str(f)) for f in files]
            fingerprint = str(meta["fingerprint"])
            if not 1 <= len(procs) <= 2:
                raise ValueError(f"{META_FILE} lists {len(procs)} model files")
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise UserError(f"tokenizer unreadable ({exc})", str(folder),
                            "delete the tokenizer folder and run 'seqattn prepare' again") from None
        src = procs[0]
        tgt = procs[1] if len(procs) > 1 else procs[0]
        return cls(src, tgt, joint=len(procs) == 1, fingerprint=fingerprint)


def read_meta(folder: Path) -> dict | None:
    path = Path(folder) / META_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _train_one(texts: Iterable[str], config: TokenizerConfig, prefix: Path) -> None:
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts),
        model_prefix=str(prefix),
        model_type=config.type,
        vocab_size=config.vocab_size,
        character_coverage=config.character_coverage,
        input_sentence_size=0,  # all it is given: the caller drew the sample (sample_sizes)
        hard_vocab_limit=False,  # a tiny corpus gets a smaller vocabulary instead of an error
        pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
        num_threads=os.cpu_count() or 1,
        minloglevel=2,
    )


def train_tokenizer(config: TokenizerConfig, src_texts: Iterable[str], tgt_texts: Iterable[str],
                    folder: Path, data_identity: str) -> Tokenizer:
    """Train SentencePiece on the training texts and store it in `folder` (replaced whole)."""
    src_texts, tgt_texts = list(src_texts), list(tgt_texts)
    return train_tokenizer_on_pairs(config, lambda: zip(src_texts, tgt_texts), folder, data_identity)


def sample_sizes(config: TokenizerConfig) -> int:
    """Pairs to sample so that each model sees `input_sentence_size` sentences: a joint model
    reads both sides of a pair, so it needs half as many pairs."""
    size = config.input_sentence_size
    return (size + 1) // 2 if config.joint else size


def train_tokenizer_on_pairs(config: TokenizerConfig, pairs: Callable[[], Iterator[tuple[str, str]]],
                             folder: Path, data_identity: str,
                             separate_process: bool = False) -> Tokenizer:
    """Train on the (source, target) pairs that each call of `pairs()` yields afresh.

    The pairs are read lazily, so only SentencePiece's own copy of the sample is in memory;
    they are read twice, once per side. `separate_process`: train in a spawned child (then
    `pairs` must pickle), whose memory is all returned when it ends.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".tokenizer.", dir=folder.parent))
    try:
        if separate_process:
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                names = pool.apply(_train_models, (config, pairs, work))
        else:
            names = _train_models(config, pairs, work)
        _write_meta(work, names, config, data_identity)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(work, folder)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return Tokenizer.load(folder)


def _train_models(config: TokenizerConfig, pairs: Callable[[], Iterator[tuple[str, str]]],
                  work: Path) -> list[str]:
    """The SentencePiece model file(s) for `config`, written into `work`; their names."""
    if not config.joint:
        _train_one((src for src, _ in pairs()), config, work / "src")
        _train_one((tgt for _, tgt in pairs()), config, work / "tgt")
        return ["src.model", "tgt.model"]
    # all sources, then all targets: the order the in-memory lists had before
    both = itertools.chain((src for src, _ in pairs()), (tgt for _, tgt in pairs()))
    _train_one(both, config, work / "joint")
    return ["joint.model"]


def _write_meta(work: Path, names: list[str], config: TokenizerConfig, data_identity: str) -> None:
    digest = hashlib.sha256()
    for name in names:
        digest.update((work / name).read_bytes())
    meta = {"files": names, "fingerprint": digest.hexdigest()[:16],
            "config": asdict(config), "data": data_identity,
            "special_ids": {"pad": PAD_ID, "unk": UNK_ID, "bos": BOS_ID, "eos": EOS_ID}}
    atomic_write_text(work / META_FILE, json.dumps(meta, indent=2))
    for extra in work.glob("*.vocab"):
        extra.unlink()
