"""Encoded corpora on disk, memory-mapped: a training split larger than memory.

A store is one folder (`RUN_DIR/cache/<key>/`, named by RunDir):

    src.tokens, tgt.tokens     every sentence's piece ids end to end (uint16; int32 past 65,535 pieces)
    src.offsets, tgt.offsets   .npy int64 [N + 1]: sentence i is tokens[offsets[i] : offsets[i + 1]]
    rows.npy                   int64 [N]: the corpus row each kept pair came from
    meta.json                  counts and dtype; written last, so a folder without it is unfinished

As in fairseq's memory-mapped datasets, nothing is read until a batch asks for it: the OS pages
tokens in (and out again under pressure), and the offsets give every length for bucketing without
touching the tokens. The folder is built under a temporary name and renamed whole, so a crash or
an error leaves no half-written store behind.

Encoding runs in `num_proc` processes over contiguous row ranges of the Arrow-backed dataset
(memory-mapped by `datasets`, so a worker reads only its rows); each writes a shard and the parent
joins the shards in row order, which makes the store the same for any number of processes.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seqattn.errors import UserError

STORE_FORMAT = "seqattn-store-1"
CHUNK_ROWS = 10_000  # rows read and encoded at once: bounded memory, few Python round trips
ROWS_PER_PROCESS = 50_000  # below this a worker process costs more than it saves
SIDES = ("src", "tgt")


class TokenSequences:
    """Sentences of piece ids in one memory-mapped array: `len`, `[i]`, `[a:b]`, iteration.

    `[i]` is a read-only view of the file (uint16 or int32), not a copy.
    """

    def __init__(self, tokens: np.ndarray, offsets: np.ndarray) -> None:
        # Plain ndarray views of the maps: slicing a np.memmap makes a memmap object each time,
        # ~10x slower, and a batch slices once per sentence and side.
        self.tokens = tokens.view(np.ndarray)  # [total pieces], memory-mapped
        self.offsets = offsets.view(np.ndarray)  # [N + 1] int64, memory-mapped

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index):
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                raise ValueError("TokenSequences slices take step 1 only")
            return TokenSequences(self.tokens, self.offsets[start : max(start, stop) + 1])
        index = int(index)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"sentence {index} of {len(self)}")
        return self.tokens[self.offsets[index] : self.offsets[index + 1]]

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self[i] for i in range(len(self)))

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)  # [N] int64, pieces per sentence (no specials)


@dataclass(frozen=True)
class Layout:
    """Where a pair's texts are: one column per language, or dicts in a `translation` column."""

    src_lang: str
    tgt_lang: str
    translation: bool  # True: {"translation": {lang: text}}; False: {lang: text}

    @property
    def columns(self) -> list[str]:
        return ["translation"] if self.translation else [self.src_lang, self.tgt_lang]

    def texts(self, rows: dict[str, list]) -> tuple[list[str], list[str]]:
        """The (source, target) texts of a batch of rows (a column dict); None becomes ''."""
        if self.translation:
            pairs = [r or {} for r in rows["translation"]]
            src = [p.get(self.src_lang) for p in pairs]
            tgt = [p.get(self.tgt_lang) for p in pairs]
        else:
            src, tgt = rows[self.src_lang], rows[self.tgt_lang]
        return ([s if isinstance(s, str) else "" for s in src],
                [t if isinstance(t, str) else "" for t in tgt])


def sample_rows(rows: int, size: int, seed: int) -> np.ndarray:
    """`size` distinct row numbers below `rows` drawn at random, in increasing order: [size]."""
    if size >= rows:
        return np.arange(rows)
    return np.sort(np.random.default_rng(seed).choice(rows, size=size, replace=False))


@dataclass(frozen=True)
class SampledPairs:
    """The non-blank pairs among `size` rows drawn at random (all rows when fewer).

    Calling it starts a fresh pass: rows are read CHUNK_ROWS at a time in row order, so the sample
    is never all in memory; it pickles small (the dataset as its file paths), so SentencePiece can
    train on it in a child process.
    """

    dataset: Any  # datasets.Dataset
    layout: Layout
    rows: int
    size: int
    seed: int

    def __call__(self) -> Iterator[tuple[str, str]]:
        chosen = sample_rows(self.rows, self.size, self.seed)
        for start in range(0, len(chosen), CHUNK_ROWS):
            part = chosen[start : start + CHUNK_ROWS]
            contiguous = part[-1] - part[0] + 1 == len(part)
            rows = self.dataset[int(part[0]) : int(part[-1]) + 1] if contiguous \
                else self.dataset[part.tolist()]
            for src, tgt in zip(*self.layout.texts(rows)):
                if src.strip() and tgt.strip():
                    yield src, tgt


@dataclass(frozen=True)
class EncodeJob:
    """One worker's share: rows [start, stop) of `dataset`, written to files `prefix`.*."""

    dataset: Any  # datasets.Dataset; pickles as the paths of its memory-mapped Arrow files
    layout: Layout
    start: int
    stop: int
    tokenizer_folder: str
    max_length: int | None  # None: keep every pair (evaluation splits)
    dtype: str  # of the token files
    prefix: str


@dataclass
class ShardCounts:
    kept: int = 0
    dropped_empty: int = 0
    dropped_long: int = 0
    pieces: tuple[int, int] = (0, 0)  # src, tgt


def token_dtype(vocab_size: int) -> str:
    return "uint16" if vocab_size <= np.iinfo(np.uint16).max + 1 else "int32"


def _keep_mask(src_len: np.ndarray, tgt_len: np.ndarray, max_length: int | None
               ) -> tuple[np.ndarray, int, int]:
    """Which pairs training keeps: both sides non-empty and at most `max_length` pieces."""
    if max_length is None:
        return np.ones(len(src_len), bool), 0, 0
    empty = (src_len == 0) | (tgt_len == 0)
    long = ~empty & ((src_len > max_length) | (tgt_len > max_length))
    return ~(empty | long), int(empty.sum()), int(long.sum())


def _flat(ids: list[list[int]], keep: np.ndarray, lengths: np.ndarray, dtype: str) -> np.ndarray:
    kept = itertools.compress(ids, keep.tolist())
    return np.fromiter(itertools.chain.from_iterable(kept), dtype, int(lengths[keep].sum()))


def encode_rows(job: EncodeJob) -> ShardCounts:
    """Encode rows [start, stop) chunk by chunk into the shard files; the worker's entry point."""
    from seqattn.tokenizer import Tokenizer

    tokenizer = Tokenizer.load(Path(job.tokenizer_folder))
    counts = ShardCounts()
    pieces = [0, 0]
    names = ("src.tokens", "tgt.tokens", "src.len", "tgt.len", "rows")
    files = {name: open(f"{job.prefix}.{name}", "wb") for name in names}
    try:
        for start in range(job.start, job.stop, CHUNK_ROWS):
            stop = min(start + CHUNK_ROWS, job.stop)
            src_text, tgt_text = job.layout.texts(job.dataset[start:stop])
            ids = (tokenizer.encode_src(src_text), tokenizer.encode_tgt(tgt_text))
            lengths = [np.fromiter(map(len, side), np.int32, len(side)) for side in ids]
            keep, empty, long = _keep_mask(lengths[0], lengths[1], job.max_length)
            for k, side in enumerate(SIDES):
                flat = _flat(ids[k], keep, lengths[k], job.dtype)
                flat.tofile(files[f"{side}.tokens"])
                lengths[k][keep].tofile(files[f"{side}.len"])
                pieces[k] += len(flat)
            (np.flatnonzero(keep) + start).astype(np.int64).tofile(files["rows"])
            counts.kept += int(keep.sum())
            counts.dropped_empty += empty
            counts.dropped_long += long
    finally:
        for handle in files.values():
            handle.close()
    counts.pieces = (pieces[0], pieces[1])
    return counts


def _row_ranges(rows: int, parts: int) -> list[tuple[int, int]]:
    bounds = np.linspace(0, rows, parts + 1).astype(int)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def processes_for(rows: int, num_proc: int) -> int:
    """Worker processes for `rows` rows: `num_proc` (0 = one per core), fewer for small corpora."""
    wanted = num_proc or os.cpu_count() or 1
    return max(1, min(wanted, rows // ROWS_PER_PROCESS))


def _run_jobs(jobs: list[EncodeJob]) -> list[ShardCounts]:
    if len(jobs) == 1:
        return [encode_rows(jobs[0])]
    # spawn, not fork: a worker imports numpy, datasets and SentencePiece only (no torch), and
    # inherits no threads from the parent.
    context = multiprocessing.get_context("spawn")
    with context.Pool(len(jobs)) as pool:
        return pool.map(encode_rows, jobs, chunksize=1)


def _join_shards(work: Path, prefixes: list[str], counts: list[ShardCounts]) -> None:
    """Concatenate the shards in row order into the store's files; offsets from the lengths."""
    for side in SIDES:
        with open(work / f"{side}.tokens", "wb") as out:
            for prefix in prefixes:
                with open(f"{prefix}.{side}.tokens", "rb") as shard:
                    shutil.copyfileobj(shard, out, 1 << 22)
        lengths = [np.fromfile(f"{prefix}.{side}.len", np.int32) for prefix in prefixes]
        offsets = np.zeros(sum(c.kept for c in counts) + 1, np.int64)  # [N + 1]
        np.cumsum(np.concatenate(lengths), out=offsets[1:])
        np.save(work / f"{side}.offsets.npy", offsets)
    np.save(work / "rows.npy", np.concatenate([np.fromfile(f"{p}.rows", np.int64) for p in prefixes]))
    for prefix in prefixes:
        for path in work.glob(f"{Path(prefix).name}.*"):
            path.unlink()


def build_store(folder: Path, dataset, layout: Layout, rows: int, tokenizer_folder: Path,
                vocab_size: int, max_length: int | None, num_proc: int, identity: str) -> None:
    """Encode rows [0, rows) of `dataset` into the store `folder` (built aside, renamed whole)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        dataset = dataset.select_columns(layout.columns)  # workers read only the two texts
        ranges = _row_ranges(rows, processes_for(rows, num_proc))
        prefixes = [str(work / f"shard{k:03d}") for k in range(len(ranges))]
        jobs = [EncodeJob(dataset, layout, a, b, str(tokenizer_folder), max_length,
                          token_dtype(vocab_size), prefix) for (a, b), prefix in zip(ranges, prefixes)]
        counts = _run_jobs(jobs)
        _join_shards(work, prefixes, counts)
        meta = {"format": STORE_FORMAT, "identity": identity, "dtype": token_dtype(vocab_size),
                "pairs": sum(c.kept for c in counts), "rows": rows, "processes": len(jobs),
                "dropped_empty": sum(c.dropped_empty for c in counts),
                "dropped_long": sum(c.dropped_long for c in counts)}
        (work / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
        _put_in_place(work, folder)
    except OSError as exc:
        raise UserError(f"cannot write the encoded corpus: {exc.strerror or exc}", str(folder),
                        "free disk space or check permissions, then run again") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _put_in_place(work: Path, folder: Path) -> None:
    """Rename the finished store over a damaged one; when another process (a DDP rank) put the
    same store there first, keep theirs."""
    if folder.exists():
        shutil.rmtree(folder, ignore_errors=True)
    try:
        os.replace(work, folder)
    except OSError:
        if not (folder / "meta.json").exists():
            raise


@dataclass
class Store:
    """An opened store: both sides memory-mapped, and what filtering dropped."""

    src: TokenSequences
    tgt: TokenSequences
    rows: np.ndarray  # [N] int64, memory-mapped
    dropped_empty: int
    dropped_long: int


def open_store(folder: Path, identity: str) -> Store | None:
    """The store in `folder` when it is complete and was built from `identity`; else None."""
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        if meta.get("format") != STORE_FORMAT or meta.get("identity") != identity:
            return None
        sides = []
        for side in SIDES:
            offsets = np.load(folder / f"{side}.offsets.npy", mmap_mode="r")
            tokens = _map_tokens(folder / f"{side}.tokens", meta["dtype"], int(offsets[-1]))
            if len(offsets) != meta["pairs"] + 1:
                return None
            sides.append(TokenSequences(tokens, offsets))
        rows = np.load(folder / "rows.npy", mmap_mode="r")
    except (OSError, ValueError, KeyError, TypeError):  # damaged or unfinished: rebuilt, not trusted
        return None
    return Store(sides[0], sides[1], rows, int(meta["dropped_empty"]), int(meta["dropped_long"]))


def _map_tokens(path: Path, dtype: str, count: int) -> np.ndarray:
    if path.stat().st_size != count * np.dtype(dtype).itemsize:
        raise ValueError(f"{path} has the wrong size")
    if count == 0:  # numpy cannot map an empty file
        return np.zeros(0, dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=(count,))
