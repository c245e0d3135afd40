"""Parallel corpora through Hugging Face `datasets`, encoded once, batched by token budget.

Two Hub layouts are recognised without configuration:
- one column per language (`bentrevett/multi30k`: {"en": ..., "de": ...});
- one `translation` column of {lang: text} dicts (WMT, IWSLT, OPUS).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from seqattn.checkpoint import save_checkpoint
from seqattn.config import DataConfig
from seqattn.errors import UserError
from seqattn.tokenizer import BOS_ID, EOS_ID, PAD_ID, Tokenizer

log = logging.getLogger(__name__)

# Builder names that only make sense with data_files.
_BUILDERS = {"json", "csv", "parquet", "text", "arrow"}


@dataclass
class Corpus:
    """One split's raw sentence pairs and an identity string for caching."""

    src: list[str]
    tgt: list[str]
    identity: str


def _load_dataset_dict(cfg: DataConfig):
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    path = Path(cfg.path).expanduser()
    where = f"data.path={cfg.path}"
    # A `save_to_disk` folder has dataset_dict.json (several splits) or state.json (one split).
    if path.is_dir() and ((path / "dataset_dict.json").exists() or (path / "state.json").exists()):
        try:
            return datasets.load_from_disk(str(path))
        except Exception as exc:  # datasets raises many kinds for a damaged folder
            raise UserError(f"cannot read the saved dataset ({exc})", where,
                            "point data.path at a folder written by save_to_disk") from None
    if cfg.path in _BUILDERS and cfg.data_files is None:
        raise UserError(f"the '{cfg.path}' builder needs data files", where,
                        "set data.data_files to a path or {split: path}")
    kwargs = {}
    if cfg.data_files is not None:
        kwargs["data_files"] = cfg.data_files
    try:
        return datasets.load_dataset(cfg.path, cfg.name, **kwargs)
    except FileNotFoundError as exc:
        raise UserError(f"dataset not found ({_first_line(exc)})", where,
                        "give a Hub id, a local folder, or a builder with data.data_files") from None
    except ValueError as exc:
        raise UserError(f"cannot load dataset ({_first_line(exc)})", where,
                        "check data.path, data.name and data.data_files") from None
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


def _columns(dataset, cfg: DataConfig, split: str) -> tuple[list[str], list[str]]:
    names = dataset.column_names
    where = f"data.path={cfg.path}, split {split}"
    if cfg.src_lang in names and cfg.tgt_lang in names:
        return list(dataset[cfg.src_lang]), list(dataset[cfg.tgt_lang])
    if "translation" in names:
        rows = dataset["translation"]
        langs = sorted(rows[0].keys()) if len(rows) else []
        missing = [lang for lang in (cfg.src_lang, cfg.tgt_lang) if lang not in langs]
        if missing:
            raise UserError(f"language '{missing[0]}' not in the translation column (it has: "
                            f"{', '.join(langs)})", where, "set data.src_lang and data.tgt_lang")
        return [r[cfg.src_lang] for r in rows], [r[cfg.tgt_lang] for r in rows]
    missing = [lang for lang in (cfg.src_lang, cfg.tgt_lang) if lang not in names]
    raise UserError(f"column '{missing[0]}' not in the dataset (columns: {', '.join(names)})",
                    where, "set data.src_lang/tgt_lang to column names, or use a dataset with "
                    "a 'translation' column")


def load_corpus(cfg: DataConfig, split: str) -> Corpus:
    """Load one split as raw text pairs; `None` sides become empty strings."""
    dataset = _select_split(_load_dataset_dict(cfg), split, cfg)
    src, tgt = _columns(dataset, cfg, split)
    src = [s if isinstance(s, str) else "" for s in src]
    tgt = [t if isinstance(t, str) else "" for t in tgt]
    fingerprint = getattr(dataset, "_fingerprint", None) or hashlib.sha256(
        "\n".join(src[:1000] + tgt[:1000]).encode()).hexdigest()
    identity = f"{cfg.path}|{cfg.name}|{split}|{cfg.src_lang}-{cfg.tgt_lang}|{fingerprint}|{len(src)}"
    return Corpus(src, tgt, identity)


# ---------------------------------------------------------------------------------------------
# Encoding, cached in the run dir


@dataclass
class EncodedSplit:
    """Subword ids per sentence (no specials), the raw texts, and what filtering removed."""

    src: list[np.ndarray]
    tgt: list[np.ndarray]
    src_text: list[str]
    tgt_text: list[str]
    dropped_empty: int = 0
    dropped_long: int = 0

    def __len__(self) -> int:
        return len(self.src)


def _pack(seqs: list[list[int]]) -> dict[str, torch.Tensor]:
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


def make_batch(split: EncodedSplit, indices: list[int]) -> Batch:
    """Pad the chosen examples into one Batch."""
    srcs = [split.src[i] for i in indices]
    tgts = [split.tgt[i] for i in indices] if split.tgt else [np.empty(0, np.int32)] * len(srcs)
    return collate(srcs, tgts, indices)


def collate(srcs: list[np.ndarray], tgts: list[np.ndarray], indices: list[int]) -> Batch:
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


def token_batches(src_lengths: list[int], tgt_lengths: list[int], batch_tokens: int,
                  seed: int | None, pool_batches: int = 100) -> list[list[int]]:
    """Group example indices so that (rows x longest side) stays within `batch_tokens`.

    With a seed: shuffle, sort by length inside pools of ~`pool_batches` batches (little padding,
    still random), then shuffle the batches. Without: one sorted pass (evaluation).
    """
    order = list(range(len(src_lengths)))
    rng = random.Random(seed)
    if seed is not None:
        rng.shuffle(order)
    mean_len = max(1.0, sum(max(a, b) for a, b in zip(src_lengths, tgt_lengths)) / max(1, len(order)))
    pool_size = max(1, int(pool_batches * batch_tokens / mean_len)) if seed is not None else len(order)
    batches: list[list[int]] = []
    for start in range(0, len(order), max(1, pool_size)):
        pool = sorted(order[start : start + pool_size],
                      key=lambda i: (tgt_lengths[i], src_lengths[i]))
        current: list[int] = []
        longest = 0
        for i in pool:
            size = max(src_lengths[i], tgt_lengths[i])
            if current and (len(current) + 1) * max(longest, size) > batch_tokens:
                batches.append(current)
                current, longest = [], 0
            current.append(i)
            longest = max(longest, size)
        if current:
            batches.append(current)
    if seed is not None:
        rng.shuffle(batches)
    return batches


def train_batches(split: EncodedSplit, batch_tokens: int, seed: int, epoch: int) -> list[list[int]]:
    """The batches of one training epoch: a pure function of (data, seed, epoch), for resuming."""
    src_lens = [len(s) + 1 for s in split.src]
    tgt_lens = [len(t) + 1 for t in split.tgt]
    return token_batches(src_lens, tgt_lens, batch_tokens, seed=seed * 100_003 + epoch)


def sentence_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Evaluation batches: sorted by length (longest first), at most `batch_size` sentences."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def padding_fraction(split: EncodedSplit, batches: list[list[int]]) -> float:
    """Share of padded target positions over all batches."""
    real = padded = 0
    for batch in batches:
        lengths = [len(split.tgt[i]) + 1 for i in batch]
        real += sum(lengths)
        padded += max(lengths) * len(lengths)
    return 1.0 - real / padded if padded else 0.0
