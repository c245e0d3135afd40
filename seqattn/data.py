"""Parallel corpora through Hugging Face `datasets`, encoded once, batched by token budget.

Two Hub layouts are recognised without configuration:
- one column per language (`bentrevett/multi30k`: {"en": ..., "de": ...});
- one `translation` column of {lang: text} dicts (WMT, IWSLT, OPUS).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from seqattn.checkpoint import save_checkpoint
from seqattn.config import DataConfig
from seqattn.corpus_store import Layout, SampledPairs, TokenSequences, build_store, open_store
from seqattn.errors import UserError
from seqattn.tokenizer import BOS_ID, EOS_ID, PAD_ID, Tokenizer

if TYPE_CHECKING:  # torch is imported where a tensor is made: `seqattn prepare` runs without it
    import torch

log = logging.getLogger(__name__)

# Builder names that only make sense with data_files.
_BUILDERS = {"json", "csv", "parquet", "text", "arrow"}


@dataclass
class Corpus:
    """One split's raw sentence pairs and an identity string for caching."""

    src: list[str]
    tgt: list[str]
    identity: str


def _quiet_datasets():
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    return datasets


def _saved_folder(path: Path) -> bool:
    """A `save_to_disk` folder: dataset_dict.json (several splits) or state.json (one split)."""
    return path.is_dir() and ((path / "dataset_dict.json").exists() or (path / "state.json").exists())


def load_kwargs(cfg: DataConfig) -> dict:
    """What `load_dataset` takes after the path, checked first: builders need data files, and
    every local file must exist and hold something."""
    where = f"data.path={cfg.path}"
    if cfg.path in _BUILDERS and cfg.data_files is None:
        raise UserError(f"the '{cfg.path}' builder needs data files", where,
                        "set data.data_files to a path or {split: path}")
    if cfg.data_files is None:
        return {}
    for name in _local_files(cfg.data_files):
        path = Path(name).expanduser()
        if not path.exists():
            raise UserError("data file not found", f"data.data_files: {name}",
                            "check the path (every file and shard listed must exist)")
        if path.is_file() and _blank(path):
            raise UserError("data file is empty", f"data.data_files: {name}",
                            "point data.data_files at a file with sentence pairs, or remove it")
    return {"data_files": cfg.data_files}


def _blank(path: Path, peek: int = 1 << 16) -> bool:
    """Whether a file holds nothing but whitespace (checked for small files only: cheap)."""
    size = path.stat().st_size
    if size > peek:
        return False
    with path.open("rb") as handle:
        return not handle.read(peek).strip()


def _local_files(data_files) -> list[str]:
    """The plain local paths among data_files (URLs and glob patterns are left to `datasets`)."""
    if isinstance(data_files, str):
        data_files = [data_files]
    elif isinstance(data_files, dict):
        data_files = [f for v in data_files.values() for f in ([v] if isinstance(v, str) else v)]
    return [f for f in data_files if "://" not in f and not any(c in f for c in "*?[")]


def _load_dataset_dict(cfg: DataConfig):
    datasets = _quiet_datasets()
    path = Path(cfg.path).expanduser()
    where = f"data.path={cfg.path}"
    if _saved_folder(path):
        try:
            return datasets.load_from_disk(str(path))
        except Exception as exc:  # datasets raises many kinds for a damaged folder
            raise UserError(f"cannot read the saved dataset ({exc})", where,
                            "point data.path at a folder written by save_to_disk") from None
    kwargs = load_kwargs(cfg)
    with dataset_errors(where):
        return datasets.load_dataset(cfg.path, cfg.name, **kwargs)


@contextmanager
def dataset_errors(where: str):
    """What `datasets` raises for a bad source, as one user-error line."""
    from datasets.exceptions import DatasetGenerationError

    try:
        yield
    except FileNotFoundError as exc:
        raise UserError(f"dataset not found ({_first_line(exc)})", where,
                        "give a Hub id, a local folder, or a builder with data.data_files") from None
    except (ValueError, DatasetGenerationError) as exc:
        cause = exc.__cause__ if isinstance(exc, DatasetGenerationError) and exc.__cause__ else exc
        raise UserError(f"cannot load dataset ({_first_line(cause)})", where,
                        "check data.path, data.name and data.data_files") from None
    except StopIteration:  # the json builder on a file with no rows
        raise UserError("cannot load dataset: a data file has no rows", where,
                        "check that every data file holds sentence pairs") from None
    except (ConnectionError, OSError) as exc:
        raise UserError(f"cannot reach dataset ({_first_line(exc)})", where,
                        "check the network, or point data.path at a local copy") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _select_split(dataset_dict, split: str, cfg: DataConfig):
    import datasets

    if isinstance(dataset_dict, datasets.Dataset):  # a single saved split
        return dataset_dict
    if split not in dataset_dict:
        have = ", ".join(dataset_dict.keys()) or "none"
        raise UserError(f"split '{split}' not in the dataset (it has: {have})",
                        f"data.path={cfg.path}", "set data.train_split/valid_split/test_split")
    return dataset_dict[split]


def find_layout(names: list[str], first_row, cfg: DataConfig, where: str) -> Layout:
    """Which of the two layouts holds the language pair; `first_row()` gives a row to look in."""
    if cfg.src_lang in names and cfg.tgt_lang in names:
        return Layout(cfg.src_lang, cfg.tgt_lang, translation=False)
    if "translation" in names:
        row = first_row()
        pair = (row or {}).get("translation") or {}
        langs = sorted(pair.keys())
        missing = [lang for lang in (cfg.src_lang, cfg.tgt_lang) if lang not in langs]
        if missing:
            raise UserError(f"language '{missing[0]}' not in the translation column (it has: "
                            f"{', '.join(langs)})", where, "set data.src_lang and data.tgt_lang")
        return Layout(cfg.src_lang, cfg.tgt_lang, translation=True)
    missing = [lang for lang in (cfg.src_lang, cfg.tgt_lang) if lang not in names]
    raise UserError(f"column '{missing[0]}' not in the dataset (columns: {', '.join(names)})",
                    where, "set data.src_lang/tgt_lang to column names, or use a dataset with "
                    "a 'translation' column")


@dataclass
class CorpusSource:
    """One split left where `datasets` keeps it (memory-mapped Arrow): rows are read on demand."""

    dataset: Any  # datasets.Dataset
    layout: Layout
    rows: int  # rows used (data.max_train_examples may cut them)
    identity: str

    def texts(self, start: int, stop: int) -> tuple[list[str], list[str]]:
        return self.layout.texts(self.dataset[start:stop])

    def sample(self, pairs: int, seed: int) -> SampledPairs:
        """A re-iterable random sample of `pairs` rows (see corpus_store.SampledPairs)."""
        return SampledPairs(self.dataset, self.layout, self.rows, pairs, seed)


def open_corpus(cfg: DataConfig, split: str) -> CorpusSource:
    """One split, opened but not read: its layout checked, its identity for caching."""
    dataset = _select_split(_load_dataset_dict(cfg), split, cfg)
    where = f"data.path={cfg.path}, split {split}"
    layout = find_layout(dataset.column_names, lambda: dataset[0] if len(dataset) else None,
                         cfg, where)
    fingerprint = getattr(dataset, "_fingerprint", None) or _text_fingerprint(
        *layout.texts(dataset[:1000]))
    identity = f"{cfg.path}|{cfg.name}|{split}|{cfg.src_lang}-{cfg.tgt_lang}|{fingerprint}|{len(dataset)}"
    return CorpusSource(dataset, layout, len(dataset), identity)


def _text_fingerprint(src: list[str], tgt: list[str]) -> str:
    return hashlib.sha256("\n".join(src + tgt).encode()).hexdigest()


def load_corpus(cfg: DataConfig, split: str) -> Corpus:
    """Load one split as raw text pairs (for small splits: dev, test); `None` becomes ''."""
    if cfg.streaming:
        from seqattn.streaming import load_stream_corpus

        return load_stream_corpus(cfg, split)
    source = open_corpus(cfg, split)
    src, tgt = source.texts(0, source.rows)
    return Corpus(src, tgt, source.identity)


# ---------------------------------------------------------------------------------------------
# Encoding, cached in the run dir


@dataclass
class EncodedSplit:
    """Subword ids per sentence (no specials), the raw texts, and what filtering removed.

    `src`/`tgt` are lists of int arrays for small splits, or memory-mapped TokenSequences for a
    training split from the store; the training split keeps no texts (`src_text` is empty).
    """

    src: Sequence[np.ndarray]
    tgt: Sequence[np.ndarray]
    src_text: list[str]
    tgt_text: list[str]
    dropped_empty: int = 0
    dropped_long: int = 0

    def __len__(self) -> int:
        return len(self.src)

    def src_lengths(self) -> np.ndarray:
        return sequence_lengths(self.src)

    def tgt_lengths(self) -> np.ndarray:
        return sequence_lengths(self.tgt)

    def batches_per_epoch(self, batch_tokens: int, seed: int) -> int | None:
        return len(train_batches(self, batch_tokens, seed, 0))

    def epoch_batches(self, batch_tokens: int, seed: int, epoch: int,
                      start: int = 0) -> Iterator[tuple[int, Batch]]:
        """(index in the epoch, batch) from batch `start` on; the same interface as a stream's."""
        batches = train_batches(self, batch_tokens, seed, epoch)
        for index in range(start, len(batches)):
            yield index, make_batch(self, batches[index])


def sequence_lengths(seqs: Sequence[np.ndarray]) -> np.ndarray:
    """[N] int64 pieces per sentence: from the store's offsets, or counted for a list."""
    if isinstance(seqs, TokenSequences):
        return seqs.lengths
    return np.fromiter(map(len, seqs), np.int64, len(seqs))


def encode_source(source: CorpusSource, tokenizer: Tokenizer, tokenizer_folder: Path,
                  cache_dir: Path, max_length: int | None, num_proc: int) -> EncodedSplit:
    """The training split encoded into a memory-mapped store in `cache_dir` (built once)."""
    identity = json.dumps([source.identity, source.rows, tokenizer.fingerprint, max_length])
    folder = Path(cache_dir) / hashlib.sha256(identity.encode()).hexdigest()[:20]
    store = open_store(folder, identity)
    if store is None:
        vocab = max(tokenizer.src_vocab_size, tokenizer.tgt_vocab_size)
        build_store(folder, source.dataset, source.layout, source.rows, tokenizer_folder, vocab,
                    max_length, num_proc, identity)
        store = open_store(folder, identity)
    if store is None:
        raise UserError("the encoded corpus could not be read back", str(folder),
                        "delete the folder and run 'seqattn prepare' again")
    return EncodedSplit(store.src, store.tgt, [], [], store.dropped_empty, store.dropped_long)


def _pack(seqs: list[list[int]]) -> dict[str, torch.Tensor]:
    import torch

    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.int64)
    flat = torch.tensor([i for s in seqs for i in s], dtype=torch.int32)
    return {"flat": flat, "lengths": lengths}


def _unpack(packed: dict[str, torch.Tensor]) -> list[np.ndarray]:
    flat = packed["flat"].numpy()
    ends = np.cumsum(packed["lengths"].numpy())
    return np.split(flat, ends[:-1]) if len(ends) else []


def encode_corpus(corpus: Corpus, tokenizer: Tokenizer, cache_dir: Path | None,
                  max_length: int | None = None, max_examples: int | None = None) -> EncodedSplit:
    """Encode with SentencePiece, drop empty/overlong pairs (training), cache the result."""
    src_text, tgt_text = corpus.src, corpus.tgt
    if max_examples is not None:
        src_text, tgt_text = src_text[:max_examples], tgt_text[:max_examples]
    key = hashlib.sha256(json.dumps(
        [corpus.identity, tokenizer.fingerprint, max_length, max_examples]).encode()).hexdigest()[:20]
    cache = Path(cache_dir) / f"{key}.pt" if cache_dir is not None else None
    if cache is not None and cache.exists():
        import torch

        try:
            stored = torch.load(cache, weights_only=True)
            keep = stored["keep"].tolist()
            return EncodedSplit(_unpack(stored["src"]), _unpack(stored["tgt"]),
                                [src_text[i] for i in keep], [tgt_text[i] for i in keep],
                                int(stored["dropped_empty"]), int(stored["dropped_long"]))
        except Exception:  # a damaged cache is rebuilt, never trusted
            log.warning("ignoring unreadable cache %s", cache)
    src_ids = tokenizer.encode_src(src_text)
    tgt_ids = tokenizer.encode_tgt(tgt_text)
    keep, dropped_empty, dropped_long = [], 0, 0
    for i, (s, t) in enumerate(zip(src_ids, tgt_ids)):
        if max_length is not None and (not s or not t):
            dropped_empty += 1
        elif max_length is not None and (len(s) > max_length or len(t) > max_length):
            dropped_long += 1
        else:
            keep.append(i)
    src_kept = [src_ids[i] for i in keep]
    tgt_kept = [tgt_ids[i] for i in keep]
    if cache is not None:
        import torch

        save_checkpoint({"src": _pack(src_kept), "tgt": _pack(tgt_kept),
                               "keep": torch.tensor(keep, dtype=torch.int64),
                               "dropped_empty": dropped_empty, "dropped_long": dropped_long}, cache)
    return EncodedSplit([np.asarray(s, dtype=np.int32) for s in src_kept],
                        [np.asarray(t, dtype=np.int32) for t in tgt_kept],
                        [src_text[i] for i in keep], [tgt_text[i] for i in keep],
                        dropped_empty, dropped_long)


# ---------------------------------------------------------------------------------------------
# Batches


@dataclass
class Batch:
    """Padded, batch-first tensors. `indices` are positions in the split, to restore order."""

    src: torch.Tensor  # [B, S] source ids + EOS
    src_lengths: torch.Tensor  # [B]
    tgt_in: torch.Tensor  # [B, T] BOS + target ids
    tgt_out: torch.Tensor  # [B, T] target ids + EOS
    indices: torch.Tensor  # [B]

    @property
    def src_mask(self) -> torch.Tensor:
        return self.src != PAD_ID  # [B, S], True on real tokens

    @property
    def tgt_mask(self) -> torch.Tensor:
        return self.tgt_out != PAD_ID  # [B, T]

    @property
    def num_tgt_tokens(self) -> int:
        return int(self.tgt_mask.sum())

    @property
    def size(self) -> int:
        return self.src.shape[0]

    def to(self, device: torch.device) -> Batch:
        return Batch(*(t.to(device, non_blocking=True) for t in
                       (self.src, self.src_lengths, self.tgt_in, self.tgt_out, self.indices)))


def src_length(ids: np.ndarray) -> int:
    return len(ids) + 1  # + EOS


def make_batch(split: EncodedSplit, indices: Sequence[int]) -> Batch:
    """Pad the chosen examples into one Batch."""
    srcs = [split.src[i] for i in indices]
    tgts = [split.tgt[i] for i in indices] if split.tgt else [np.empty(0, np.int32)] * len(srcs)
    return collate(srcs, tgts, indices)


def collate(srcs: list[np.ndarray], tgts: list[np.ndarray], indices: Sequence[int]) -> Batch:
    import torch

    n = len(srcs)
    max_src = max(len(s) for s in srcs) + 1
    max_tgt = max(len(t) for t in tgts) + 1
    src = np.full((n, max_src), PAD_ID, dtype=np.int64)
    tgt_in = np.full((n, max_tgt), PAD_ID, dtype=np.int64)
    tgt_out = np.full((n, max_tgt), PAD_ID, dtype=np.int64)
    for row, (s, t) in enumerate(zip(srcs, tgts)):
        src[row, : len(s)] = s
        src[row, len(s)] = EOS_ID
        tgt_in[row, 0] = BOS_ID
        tgt_in[row, 1 : len(t) + 1] = t
        tgt_out[row, : len(t)] = t
        tgt_out[row, len(t)] = EOS_ID
    lengths = torch.tensor([len(s) + 1 for s in srcs], dtype=torch.int64)
    return Batch(torch.from_numpy(src), lengths, torch.from_numpy(tgt_in),
                 torch.from_numpy(tgt_out), torch.tensor(indices, dtype=torch.int64))


def token_batches(src_lengths: Sequence[int], tgt_lengths: Sequence[int], batch_tokens: int,
                  seed: int | None, pool_batches: int = 100) -> list[np.ndarray]:
    """Group example indices so that (rows x longest side) stays within `batch_tokens`.

    With a seed: shuffle, sort by length inside pools of ~`pool_batches` batches (little padding,
    still random), then shuffle the batches. Without: one sorted pass (evaluation). In numpy:
    a 2M-pair epoch costs a few arrays, not millions of Python ints.
    """
    src = np.asarray(src_lengths, np.int64)  # [N]
    tgt = np.asarray(tgt_lengths, np.int64)  # [N]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(src)) if seed is not None else np.arange(len(src))
    longest = np.maximum(src, tgt)  # [N]
    mean_len = max(1.0, float(longest.mean())) if len(src) else 1.0
    pool_size = max(1, int(pool_batches * batch_tokens / mean_len)) if seed is not None else len(src)
    batches: list[np.ndarray] = []  # each [rows] int64 indices
    for start in range(0, len(order), max(1, pool_size)):
        pool = order[start : start + pool_size]
        pool = pool[np.lexsort((src[pool], tgt[pool]))]  # by target length, then source length
        batches += _fill(pool, longest[pool].tolist(), batch_tokens)
    if seed is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def _fill(pool: np.ndarray, sizes: list[int], batch_tokens: int) -> list[np.ndarray]:
    """Cut a length-sorted pool into batches whose rows x longest side fit `batch_tokens`."""
    cuts: list[int] = []
    rows = longest = 0
    for position, size in enumerate(sizes):
        if rows and (rows + 1) * max(longest, size) > batch_tokens:
            cuts.append(position)
            rows = longest = 0
        rows += 1
        longest = max(longest, size)
    return np.split(pool, cuts) if len(pool) else []


def train_batches(split: EncodedSplit, batch_tokens: int, seed: int, epoch: int) -> list[np.ndarray]:
    """The batches of one training epoch: a pure function of (data, seed, epoch), for resuming."""
    return token_batches(split.src_lengths() + 1, split.tgt_lengths() + 1, batch_tokens,
                         seed=seed * 100_003 + epoch)


def sentence_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Evaluation batches: sorted by length (longest first), at most `batch_size` sentences."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def padding_fraction(split: EncodedSplit, batches: list) -> float:
    """Share of padded target positions over all batches."""
    tgt = split.tgt_lengths() + 1  # [N] with EOS
    real = padded = 0
    for batch in batches:
        lengths = tgt[batch]
        real += int(lengths.sum())
        padded += int(lengths.max()) * len(lengths)
    return 1.0 - real / padded if padded else 0.0
