"""`seqattn prepare`: load the corpus, train (or reuse) SentencePiece, encode and cache the splits."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

from seqattn.config import Config, DataConfig
from seqattn.data import Corpus, EncodedSplit, encode_corpus, load_corpus, padding_fraction, train_batches
from seqattn.errors import UserError
from seqattn.rundir import RunDir
from seqattn.tokenizer import Tokenizer, read_meta, train_tokenizer


@dataclass
class Prepared:
    tokenizer: Tokenizer
    train: EncodedSplit
    valid: EncodedSplit | None
    stats: dict


def load_train_corpus(data: DataConfig) -> Corpus:
    """The training split, cut to `data.max_train_examples` when set."""
    corpus = load_corpus(data, data.train_split)
    if data.max_train_examples is not None:
        corpus.src, corpus.tgt = corpus.src[: data.max_train_examples], corpus.tgt[: data.max_train_examples]
        corpus.identity += f"|first {data.max_train_examples}"
    return corpus


def prepare(config: Config, run_dir: Path, with_valid: bool = True,
            allow_retrain: bool = True, say=print) -> Prepared:
    """Everything training needs from the data, reusing the tokenizer and cache when they match."""
    started = time.perf_counter()
    data = config.data
    corpus = load_train_corpus(data)
    loaded = time.perf_counter()
    run = RunDir(run_dir)
    tokenizer = _tokenizer_for(config, corpus, run, allow_retrain, say)
    tokenized = time.perf_counter()
    train = encode_corpus(corpus, tokenizer, run.cache, max_length=data.max_length)
    if len(train) == 0:
        raise UserError(f"no training pairs left after filtering ({train.dropped_empty} empty, "
                        f"{train.dropped_long} longer than {data.max_length} pieces)",
                        f"data.path={data.path}", "raise data.max_length or check the data")
    valid = None
    if with_valid:
        valid_corpus = load_corpus(data, data.valid_split)
        valid = encode_corpus(valid_corpus, tokenizer, run.cache,
                              max_examples=data.valid_max_examples)
    batches = train_batches(train, config.train.batch_tokens, config.train.seed, epoch=0)
    stats = {
        "train_pairs": len(train),
        "dropped_empty": train.dropped_empty,
        "dropped_long": train.dropped_long,
        "valid_pairs": len(valid) if valid is not None else 0,
        "src_vocab": tokenizer.src_vocab_size,
        "tgt_vocab": tokenizer.tgt_vocab_size,
        "src_pieces_per_sentence": sum(len(s) for s in train.src) / len(train),
        "tgt_pieces_per_sentence": sum(len(t) for t in train.tgt) / len(train),
        "batches_per_epoch": len(batches),
        "padding_fraction": padding_fraction(train, batches),
        "seconds_load": loaded - started,
        "seconds_tokenizer": tokenized - loaded,
        "seconds_total": time.perf_counter() - started,
    }
    return Prepared(tokenizer, train, valid, stats)


def _tokenizer_for(config: Config, corpus: Corpus, run: RunDir, allow_retrain: bool, say) -> Tokenizer:
    """The run's tokenizer when it matches the config and data; else (if allowed) a new one."""
    data = config.data
    folder = run.tokenizer
    meta = read_meta(folder)
    if meta is not None and meta.get("config") == asdict(config.tokenizer) \
            and meta.get("data") == corpus.identity:
        tokenizer = Tokenizer.load(folder)
    elif meta is None and not allow_retrain:
        raise UserError("tokenizer missing", str(folder),
                        "restore the run's tokenizer folder, or start again with --overwrite")
    elif not allow_retrain:
        raise UserError("the run's tokenizer does not match this config or data", str(folder),
                        "resume with the config the run was started with, or use --overwrite")
    else:
        texts = [(s, t) for s, t in zip(corpus.src, corpus.tgt) if s.strip() and t.strip()]
        if not texts:
            raise UserError("the training split has no sentence pairs",
                            f"data.path={data.path}, split {data.train_split}",
                            "check data.src_lang/tgt_lang and the files")
        say(f"training SentencePiece {config.tokenizer.type} ({config.tokenizer.vocab_size} pieces, "
            f"{'joint' if config.tokenizer.joint else 'per side'}) on {len(texts)} pairs")
        tokenizer = train_tokenizer(config.tokenizer, [s for s, _ in texts],
                                    [t for _, t in texts], folder, corpus.identity)
    return tokenizer


def describe(stats: dict) -> str:
    return (f"train {stats['train_pairs']} pairs (dropped {stats['dropped_empty']} empty, "
            f"{stats['dropped_long']} too long), valid {stats['valid_pairs']}; vocab "
            f"{stats['src_vocab']}/{stats['tgt_vocab']}; pieces/sentence "
            f"{stats['src_pieces_per_sentence']:.1f} src, {stats['tgt_pieces_per_sentence']:.1f} tgt; "
            f"{stats['batches_per_epoch']} batches/epoch, padding {stats['padding_fraction']:.1%}; "
            f"{stats['seconds_total']:.1f}s")
