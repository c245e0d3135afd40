"""`data.streaming: true`: train on a corpus read as a stream, never downloaded or cached whole.

The training split comes from `datasets.load_dataset(..., streaming=True)` (the same call for the
Hub and for local json/parquet/csv files), is split across ranks with
`datasets.distributed.split_dataset_by_node` (rank and world size from torchrun's RANK and
WORLD_SIZE, else 0 and 1), shuffled by `datasets` in a buffer of `data.shuffle_buffer` pairs,
then tokenised on the fly `data.shuffle_buffer` pairs at a time and cut into token-budget batches
inside that bucket (sorted by length, batches shuffled: OpenNMT-py's bucket approach), with the
same `token_batches` as the stored corpus.

Resume is exact for the same data and the same world size: an epoch's order is a pure function
of (seed, epoch, rank, world size), so a resumed run reads the epoch again from its start and
skips the batches it already trained on (re-reading and re-tokenising them: that costs time,
not accuracy). SentencePiece trains on the stream's first pairs (see `prepare_stream`).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seqattn.config import Config, DataConfig
from seqattn.corpus_store import Layout
from seqattn.data import Batch, Corpus, collate, dataset_errors, find_layout, load_kwargs, token_batches
from seqattn.errors import UserError
from seqattn.rundir import RunDir
from seqattn.tokenizer import Tokenizer, sample_sizes

READ_BATCH = 1_000  # rows `datasets` hands over at once


def world_from_env() -> tuple[int, int]:
    """(rank, world size) as torchrun sets them; (0, 1) for a plain process."""
    try:
        rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise UserError("RANK and WORLD_SIZE must be integers", "environment",
                        "launch with torchrun, or unset them") from None
    if not 0 <= rank < world:
        raise UserError(f"RANK {rank} is not below WORLD_SIZE {world}", "environment",
                        "launch with torchrun, or unset them")
    return rank, world


def open_stream(cfg: DataConfig, split: str):
    """The split as a `datasets.IterableDataset` (nothing read yet but the file list)."""
    from seqattn.data import _quiet_datasets, _saved_folder

    datasets = _quiet_datasets()
    where = f"data.path={cfg.path}, split {split} (streaming)"
    if _saved_folder(Path(cfg.path).expanduser()):
        raise UserError("a save_to_disk folder is read from disk, not streamed", where,
                        "set data.streaming: false (it is memory-mapped already)")
    kwargs = load_kwargs(cfg)
    with dataset_errors(where):
        return datasets.load_dataset(cfg.path, cfg.name, split=split, streaming=True, **kwargs)


@contextmanager
def stream_errors(where: str):
    """Failures while reading a stream (a shard gone or damaged since it started) as one line."""
    try:
        with dataset_errors(where):
            yield
    except UserError:
        raise
    except Exception as exc:  # pyarrow, json and fsspec raise many kinds for a bad shard
        raise UserError(f"cannot read the stream ({type(exc).__name__}: {exc})"[:400], where,
                        "check the data files (every shard must be readable)") from None


def stream_layout(stream, cfg: DataConfig, split: str) -> Layout:
    """The layout of the stream's first row; an empty stream or missing languages is an error."""
    where = f"data.path={cfg.path}, split {split} (streaming)"
    with stream_errors(where):
        first = next(iter(stream), None)
    if first is None:
        raise UserError("the stream has no rows", where, "check data.path and data.data_files")
    return find_layout(list(first.keys()), lambda: first, cfg, where)


def stream_pairs(stream, layout: Layout, where: str) -> Iterator[tuple[str, str]]:
    """(source, target) texts of every row, read READ_BATCH rows at a time."""
    with stream_errors(where):
        for rows in stream.iter(batch_size=READ_BATCH):
            yield from zip(*layout.texts(rows))


def load_stream_corpus(cfg: DataConfig, split: str) -> Corpus:
    """A small split (dev, test) read from the stream into memory."""
    stream = open_stream(cfg, split)
    layout = stream_layout(stream, cfg, split)
    where = f"data.path={cfg.path}, split {split} (streaming)"
    src, tgt = [], []
    for s, t in stream_pairs(stream, layout, where):
        src.append(s)
        tgt.append(t)
    identity = f"{cfg.path}|{cfg.name}|{split}|{cfg.src_lang}-{cfg.tgt_lang}|stream|" \
               f"{_digest(src[:1000], tgt[:1000])}|{len(src)}"
    return Corpus(src, tgt, identity)


def _digest(src: list[str], tgt: list[str]) -> str:
    return hashlib.sha256("\n".join(src + tgt).encode()).hexdigest()[:20]


@dataclass
class StreamingCorpus:
    """The training split as a stream: batches of an epoch made on the fly, per rank."""

    stream: Any  # datasets.IterableDataset, before the per-rank split
    layout: Layout
    data: DataConfig
    tokenizer: Tokenizer
    rank: int
    world: int

    @property
    def where(self) -> str:
        return f"data.path={self.data.path}, split {self.data.train_split} (streaming)"

    def batches_per_epoch(self, batch_tokens: int, seed: int) -> int | None:
        return None  # unknown until the stream has been read

    def _rank_stream(self, seed: int, epoch: int):
        from datasets.distributed import split_dataset_by_node

        stream = split_dataset_by_node(self.stream, rank=self.rank, world_size=self.world)
        stream = stream.shuffle(seed=seed, buffer_size=self.data.shuffle_buffer)
        stream.set_epoch(epoch)  # a different order each epoch, the same on a resume
        return stream

    def epoch_batches(self, batch_tokens: int, seed: int, epoch: int,
                      start: int = 0) -> Iterator[tuple[int, Batch]]:
        """(index in the epoch, batch) of this rank, from batch `start` on."""
        pairs = stream_pairs(self._rank_stream(seed, epoch), self.layout, self.where)
        index = 0
        for number in itertools.count():
            bucket = list(itertools.islice(pairs, self.data.shuffle_buffer))
            if not bucket:
                return
            src, tgt = self._encode(bucket)
            bucket_seed = (seed * 100_003 + epoch) * 1_000_003 + number
            for indices in token_batches([len(s) + 1 for s in src], [len(t) + 1 for t in tgt],
                                         batch_tokens, seed=bucket_seed):
                if index >= start:  # earlier ones were trained on before a resume
                    yield index, collate([src[i] for i in indices], [tgt[i] for i in indices],
                                         indices)
                index += 1

    def _encode(self, bucket: list[tuple[str, str]]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Piece ids of a bucket's pairs, without the empty and the overlong (as the store)."""
        src = self.tokenizer.encode_src([s for s, _ in bucket])
        tgt = self.tokenizer.encode_tgt([t for _, t in bucket])
        limit = self.data.max_length
        keep = [i for i, (s, t) in enumerate(zip(src, tgt))
                if s and t and len(s) <= limit and len(t) <= limit]
        return ([np.asarray(src[i], np.int32) for i in keep],
                [np.asarray(tgt[i], np.int32) for i in keep])


def open_train_stream(data: DataConfig) -> tuple[Any, Layout, str]:
    """The training stream (cut to data.max_train_examples), its layout and identity."""
    stream = open_stream(data, data.train_split)
    layout = stream_layout(stream, data, data.train_split)
    if data.max_train_examples is not None:
        stream = stream.take(data.max_train_examples)
    where = f"data.path={data.path}, split {data.train_split} (streaming)"
    head = list(itertools.islice(stream_pairs(stream, layout, where), 1000))
    identity = (f"{data.path}|{data.name}|{data.train_split}|{data.src_lang}-{data.tgt_lang}|"
                f"stream|{data.data_files}|{data.max_train_examples}|"
                f"{_digest([s for s, _ in head], [t for _, t in head])}")
    return stream, layout, identity


def head_split(data: DataConfig, tokenizer: Tokenizer, pairs: int
               ) -> tuple[list[np.ndarray], list[np.ndarray], str]:
    """The stream's first `pairs` training pairs, encoded and filtered as for training."""
    stream, layout, identity = open_train_stream(data)
    where = f"data.path={data.path}, split {data.train_split} (streaming)"
    corpus = StreamingCorpus(stream, layout, data, tokenizer, 0, 1)
    src, tgt = corpus._encode(list(itertools.islice(stream_pairs(stream, layout, where), pairs)))
    return src, tgt, identity


def prepare_stream(config: Config, run_dir: Path, with_valid: bool, allow_retrain: bool, say):
    """The tokenizer (trained on the stream's first pairs) and the dev split; the training
    split stays a stream, read during training."""
    from seqattn.prepare import Prepared, load_valid, tokenizer_for

    started = time.perf_counter()
    data = config.data
    stream, layout, identity = open_train_stream(data)
    run = RunDir(run_dir)
    pairs = sample_sizes(config.tokenizer)
    where = f"data.path={data.path}, split {data.train_split} (streaming)"

    def head() -> Iterator[tuple[str, str]]:  # the first non-blank pairs, as many as sampled
        rows = stream_pairs(stream, layout, where)
        return itertools.islice(((s, t) for s, t in rows if s.strip() and t.strip()), pairs)

    tokenizer = tokenizer_for(config, identity, head, run, allow_retrain, say,
                              f"the stream's first {pairs}")
    valid = load_valid(config, tokenizer, run) if with_valid else None
    rank, world = world_from_env()
    train = StreamingCorpus(stream, layout, data, tokenizer, rank, world)
    stats = {"streaming": True, "source": data.path, "rank": rank, "world_size": world,
             "valid_pairs": len(valid) if valid is not None else 0,
             "src_vocab": tokenizer.src_vocab_size, "tgt_vocab": tokenizer.tgt_vocab_size,
             "seconds_total": time.perf_counter() - started}
    return Prepared(tokenizer, train, valid, stats)
