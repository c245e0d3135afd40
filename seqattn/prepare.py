"""`seqattn prepare`: open the corpus, train (or reuse) SentencePiece, encode and cache the splits.

The training split is never held as text: SentencePiece trains on a random sample read lazily,
and the encoded split is a memory-mapped store in the run's cache (seqattn/corpus_store.py),
built by `data.num_proc` processes. With `data.streaming: true` nothing is cached: the training
split is read, tokenised and batched during training (seqattn/streaming.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from seqattn.config import Config, DataConfig
from seqattn.data import (
    CorpusSource,
    EncodedSplit,
    encode_corpus,
    encode_source,
    load_corpus,
    open_corpus,
    padding_fraction,
    train_batches,
)
from seqattn.errors import UserError
from seqattn.rundir import RunDir
from seqattn.tokenizer import Tokenizer, read_meta, sample_sizes, train_tokenizer_on_pairs

SAMPLE_SEED = 0  # the tokenizer's sample depends on the data and the config only
# From this many sampled pairs SentencePiece trains in a child process: its memory (~25 bytes per
# character of the sample) goes back to the system before encoding starts, instead of staying in
# this process's heap.
SPM_CHILD_PAIRS = 20_000

Pairs = Callable[[], Iterator[tuple[str, str]]]


@dataclass
class Prepared:
    tokenizer: Tokenizer
    train: EncodedSplit  # or a streaming.StreamingCorpus with data.streaming
    valid: EncodedSplit | None
    stats: dict


def open_train_source(data: DataConfig) -> CorpusSource:
    """The training split, opened (not read), cut to `data.max_train_examples` when set."""
    source = open_corpus(data, data.train_split)
    if source.rows == 0:
        raise UserError("the training split has no sentence pairs (0 rows)",
                        f"data.path={data.path}, split {data.train_split}",
                        "check data.path, data.data_files and data.train_split")
    if data.max_train_examples is not None:
        source.rows = min(source.rows, data.max_train_examples)
        source.identity += f"|first {data.max_train_examples}"
    return source


def encoded_train(config: Config, source: CorpusSource, tokenizer: Tokenizer, run: RunDir) -> EncodedSplit:
    """The training split in the run's store (encoded now unless it already is)."""
    data = config.data
    return encode_source(source, tokenizer, run.tokenizer, run.cache, data.max_length, data.num_proc)


def training_sample(config: Config, tokenizer: Tokenizer, run: RunDir, pairs: int
                    ) -> tuple[Sequence[np.ndarray], Sequence[np.ndarray], str]:
    """Encoded training pairs for statistics (the shortlist): the store's first `pairs`, or a
    stream's first `pairs` encoded in memory; and what they came from."""
    if config.data.streaming:
        from seqattn.streaming import head_split

        return head_split(config.data, tokenizer, pairs)
    source = open_train_source(config.data)
    train = encoded_train(config, source, tokenizer, run)
    return train.src[:pairs], train.tgt[:pairs], source.identity


def prepare(config: Config, run_dir: Path, with_valid: bool = True,
            allow_retrain: bool = True, say=print) -> Prepared:
    """Everything training needs from the data, reusing the tokenizer and cache when they match."""
    if config.data.streaming:
        from seqattn.streaming import prepare_stream

        return prepare_stream(config, run_dir, with_valid, allow_retrain, say)
    started = time.perf_counter()
    data = config.data
    source = open_train_source(data)
    loaded = time.perf_counter()
    run = RunDir(run_dir)
    pairs = sample_sizes(config.tokenizer)
    tokenizer = tokenizer_for(config, source.identity, source.sample(pairs, SAMPLE_SEED),
                              run, allow_retrain, say, f"{min(pairs, source.rows)} of {source.rows}",
                              separate_process=min(pairs, source.rows) >= SPM_CHILD_PAIRS)
    tokenized = time.perf_counter()
    train = encoded_train(config, source, tokenizer, run)
    if len(train) == 0:
        raise UserError(f"no training pairs left after filtering ({train.dropped_empty} empty, "
                        f"{train.dropped_long} longer than {data.max_length} pieces)",
                        f"data.path={data.path}", "raise data.max_length or check the data")
    valid = load_valid(config, tokenizer, run) if with_valid else None
    stats = split_stats(config, train, valid, tokenizer)
    stats.update({"seconds_load": loaded - started, "seconds_tokenizer": tokenized - loaded,
                  "seconds_total": time.perf_counter() - started})
    return Prepared(tokenizer, train, valid, stats)


def load_valid(config: Config, tokenizer: Tokenizer, run: RunDir) -> EncodedSplit:
    """The dev split, small enough to hold with its texts (validation scores them)."""
    data = config.data
    corpus = load_corpus(data, data.valid_split)
    return encode_corpus(corpus, tokenizer, run.cache, max_examples=data.valid_max_examples)


def split_stats(config: Config, train: EncodedSplit, valid: EncodedSplit | None,
                tokenizer: Tokenizer) -> dict:
    batches = train_batches(train, config.train.batch_tokens, config.train.seed, epoch=0)
    return {
        "train_pairs": len(train),
        "dropped_empty": train.dropped_empty,
        "dropped_long": train.dropped_long,
        "valid_pairs": len(valid) if valid is not None else 0,
        "src_vocab": tokenizer.src_vocab_size,
        "tgt_vocab": tokenizer.tgt_vocab_size,
        "src_pieces_per_sentence": float(train.src_lengths().mean()),
        "tgt_pieces_per_sentence": float(train.tgt_lengths().mean()),
        "batches_per_epoch": len(batches),
        "padding_fraction": padding_fraction(train, batches),
    }


def tokenizer_for(config: Config, identity: str, pairs: Pairs, run: RunDir, allow_retrain: bool,
                  say, sample_note: str, separate_process: bool = False) -> Tokenizer:
    """The run's tokenizer when it matches the config and data; else (if allowed) a new one,
    trained on the pairs `pairs()` yields (a sample of the training split)."""
    data = config.data
    folder = run.tokenizer
    meta = read_meta(folder)
    if meta is not None and meta.get("data") == identity and _same_settings(
            meta.get("config"), asdict(config.tokenizer), strict=allow_retrain):
        return Tokenizer.load(folder)
    if meta is None and not allow_retrain:
        raise UserError("tokenizer missing", str(folder),
                        "restore the run's tokenizer folder, or start again with --overwrite")
    if not allow_retrain:
        raise UserError("the run's tokenizer does not match this config or data", str(folder),
                        "resume with the config the run was started with, or use --overwrite")
    if next(pairs(), None) is None:
        raise UserError("the training split has no sentence pairs",
                        f"data.path={data.path}, split {data.train_split}",
                        "check data.src_lang/tgt_lang and the files")
    say(f"training SentencePiece {config.tokenizer.type} ({config.tokenizer.vocab_size} pieces, "
        f"{'joint' if config.tokenizer.joint else 'per side'}) on {sample_note} pairs")
    return train_tokenizer_on_pairs(config.tokenizer, pairs, folder, identity, separate_process)


def _same_settings(stored: dict | None, wanted: dict, strict: bool) -> bool:
    """Whether a stored tokenizer was made with these settings. A resume (`strict` False) keeps
    the run's tokenizer across a change of the sample size alone: runs from before the default
    input_sentence_size came down (2M -> 300k) still resume."""
    if strict or not isinstance(stored, dict):
        return stored == wanted
    ignore = "input_sentence_size"
    return {k: v for k, v in stored.items() if k != ignore} == \
        {k: v for k, v in wanted.items() if k != ignore}


def describe(stats: dict) -> str:
    if stats.get("streaming"):
        return (f"train: streamed ({stats['source']}), valid {stats['valid_pairs']}; vocab "
                f"{stats['src_vocab']}/{stats['tgt_vocab']}; {stats['seconds_total']:.1f}s")
    return (f"train {stats['train_pairs']} pairs (dropped {stats['dropped_empty']} empty, "
            f"{stats['dropped_long']} too long), valid {stats['valid_pairs']}; vocab "
            f"{stats['src_vocab']}/{stats['tgt_vocab']}; pieces/sentence "
            f"{stats['src_pieces_per_sentence']:.1f} src, {stats['tgt_pieces_per_sentence']:.1f} tgt; "
            f"{stats['batches_per_epoch']} batches/epoch, padding {stats['padding_fraction']:.1%}; "
            f"{stats['seconds_total']:.1f}s")
