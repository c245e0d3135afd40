"""Typed configuration: every default lives here; YAML files and `--set` hold only what changes.

A config is a tree of frozen dataclasses. `load_config` reads YAML with `yaml.safe_load`, applies
`--set key=value` overrides, and validates every key and type, naming the dotted key on error.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml

from seqattn.errors import UserError

STORED_PER_SOURCE = 100  # the lexical shortlist keeps this many target pieces per source piece


DataFiles = Union[str, list[str], dict[str, Union[str, list[str]]], None]


@dataclass(frozen=True)
class DataConfig:
    path: str = "bentrevett/multi30k"  # anything datasets.load_dataset takes, or a save_to_disk folder
    name: Optional[str] = None  # Hub config name, e.g. "de-en" for wmt14
    data_files: DataFiles = None  # for json/csv/parquet builders: a path, shards, {split: path or shards}
    src_lang: str = "de"
    tgt_lang: str = "en"
    train_split: str = "train"
    valid_split: str = "validation"
    test_split: str = "test"
    max_length: int = 100  # subword pieces per side; longer training pairs are dropped
    max_train_examples: Optional[int] = None  # first N training pairs only (quick runs)
    valid_max_examples: Optional[int] = None  # validate on the first N dev pairs (faster validation)
    streaming: bool = False  # read the corpus as a stream (load_dataset(streaming=True)), tokenise on the fly
    num_proc: int = 0  # processes that encode the training split in prepare; 0 = one per CPU core
    shuffle_buffer: int = 20_000  # streaming: pairs shuffled, then bucketed by length, at a time


@dataclass(frozen=True)
class TokenizerConfig:
    type: Literal["unigram", "bpe"] = "unigram"
    vocab_size: int = 8000
    joint: bool = True  # one SentencePiece model for both languages (enables shared embeddings)
    character_coverage: float = 1.0  # 1.0 keeps every character of Latin-script corpora
    input_sentence_size: int = 300_000  # sentences, sampled, SentencePiece trains on (~25 bytes/character)


@dataclass(frozen=True)
class RNNConfig:
    """The recurrent parts of `seq2seq`, `bahdanau` and `luong` (encoder and decoder)."""

    cell: Literal["lstm", "gru"] = "lstm"
    hidden_size: int = 512  # the decoder's; a bidirectional encoder uses half per direction
    num_layers: int = 1
    bidirectional: bool = True
    context_every_step: bool = False  # seq2seq: Cho et al. 2014's context at every step


@dataclass(frozen=True)
class AttentionConfig:
    """Attention over the encoder states, for `bahdanau` (always additive) and `luong`."""

    score: Literal["dot", "general", "concat"] = "general"  # luong's score function (eq. 8)
    size: int = 0  # additive/concat attention's inner size; 0 = rnn.hidden_size
    input_feeding: bool = True  # luong: feed the attentional state to the next step


@dataclass(frozen=True)
class TransformerConfig:
    """`transformer` (Vaswani et al. 2017); its width d_model is `model.embedding_size`."""

    encoder_layers: int = 3
    decoder_layers: int = 3
    heads: int = 4  # embedding_size must divide by it
    ff_size: int = 1024  # position-wise feed-forward inner width
    norm: Literal["pre", "post"] = "pre"  # layer norm before each sublayer (stabler) or after (paper)
    positions: Literal["sinusoidal", "learned"] = "sinusoidal"  # fixed sin/cos (paper) or trained
    max_positions: int = 1024  # learned positions: the longest sequence they cover
    attention_dropout: float = 0.1  # on the attention weights
    activation: Literal["relu", "gelu"] = "relu"


@dataclass(frozen=True)
class ModelConfig:
    kind: Literal["seq2seq", "bahdanau", "luong", "transformer"] = "bahdanau"
    embedding_size: int = 256  # for the transformer also its width d_model
    dropout: float = 0.2
    tie_embeddings: bool = False  # decoder input and output embeddings share one matrix
    share_embeddings: bool = False  # source and target embeddings share one matrix (joint vocab)
    rnn: RNNConfig = field(default_factory=RNNConfig)
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    transformer: TransformerConfig = field(default_factory=TransformerConfig)

    @property
    def is_rnn(self) -> bool:
        return self.kind != "transformer"


_WARNED: set[str] = set()  # config files already warned about (see migrate_legacy_keys)

# Round-1 configs had every model key flat under `model:`; each still loads, moved here with a
# deprecation warning (shared/CONTRACT.md: rename nothing without accepting the old name).
LEGACY_MODEL_KEYS = {
    "cell": "rnn.cell",
    "hidden_size": "rnn.hidden_size",
    "num_layers": "rnn.num_layers",
    "bidirectional": "rnn.bidirectional",
    "context_every_step": "rnn.context_every_step",
    "attention_score": "attention.score",
    "attention_size": "attention.size",
    "input_feeding": "attention.input_feeding",
}


@dataclass(frozen=True)
class TrainConfig:
    batch_tokens: int = 4096  # padded tokens per batch (the longer side counts)
    accumulate: int = 1  # batches per update (gradient accumulation); K batches of B update like one of K*B
    max_epochs: Optional[int] = 30
    max_steps: Optional[int] = None
    max_minutes: Optional[float] = None
    lr: float = 0.001
    seed: int = 42
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    optimizer: Literal["adam", "adamw"] = "adam"
    weight_decay: float = 0.0
    adam_beta1: float = 0.9  # Adam's decay of the gradient mean (Kingma & Ba 2015, beta_1)
    adam_beta2: float = 0.999  # Adam's decay of the squared gradient (beta_2); Vaswani et al. used 0.98
    clip_norm: float = 5.0  # 0 = no clipping
    label_smoothing: float = 0.1
    teacher_forcing: float = 1.0  # below 1, a share of steps feed the model's own prediction
    schedule: Literal["constant", "plateau", "inverse_sqrt", "linear", "cosine"] = "constant"
    warmup_steps: int = 0
    plateau_factor: float = 0.5
    plateau_patience: int = 2  # validations without improvement before the lr drops
    min_lr: float = 1e-5
    best_metric: Literal["bleu", "chrf", "loss", "ppl"] = "bleu"
    patience: Optional[int] = None  # stop after this many validations without improvement
    log_every: int = 50
    valid_every: int = 500
    save_every: int = 100
    keep_last: int = 0  # also keep the last N saves' weights (stepNNNNNNN.pt) for `seqattn average`
    max_bad_steps: int = 10  # consecutive NaN/inf losses before the run is declared diverged
    num_threads: int = 0  # torch CPU threads; 0 = torch's default (all cores)
    ddp_timeout: float = 600.0  # torchrun: seconds a rank waits for the others before failing; > validation
    samples: int = 3  # sample translations printed at each validation


@dataclass(frozen=True)
class SearchConfig:
    beam_size: int = 5
    length_penalty: float = 1.0  # GNMT alpha; 0 = raw log-probability
    max_length_ratio: float = 1.5  # output length limit = ratio * source length + offset
    max_length_offset: int = 10
    batch_size: int = 64  # sentences per decoding batch
    # Faster, approximate decoding (seqattn/shortlist.py, seqattn/quantize.py); meanings in
    # scripts/config_reference.py
    shortlist: int = 0
    shortlist_per_source: int = 20
    precision: Literal["fp32", "int8"] = "fp32"


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    search: SearchConfig = field(default_factory=SearchConfig)


# Values that must be positive (> 0) or non-negative (>= 0); checked with the dotted key.
_POSITIVE = {
    "data.max_length", "data.max_train_examples", "data.valid_max_examples", "data.shuffle_buffer",
    "tokenizer.vocab_size", "tokenizer.input_sentence_size", "tokenizer.character_coverage",
    "model.embedding_size", "model.rnn.hidden_size", "model.rnn.num_layers",
    "model.transformer.encoder_layers", "model.transformer.decoder_layers",
    "model.transformer.heads", "model.transformer.ff_size", "model.transformer.max_positions",
    "train.batch_tokens", "train.accumulate", "train.max_epochs", "train.max_steps",
    "train.max_minutes", "train.lr",
    "train.log_every", "train.valid_every", "train.save_every", "train.max_bad_steps",
    "train.patience", "train.plateau_patience", "train.ddp_timeout",
    "search.beam_size", "search.max_length_ratio", "search.batch_size",
    "search.shortlist_per_source",
}
_NON_NEGATIVE = {
    "model.dropout", "model.attention.size", "model.transformer.attention_dropout",
    "train.weight_decay", "train.clip_norm", "train.adam_beta1", "train.adam_beta2",
    "train.label_smoothing", "train.warmup_steps", "train.min_lr", "train.num_threads",
    "train.samples", "search.length_penalty", "search.max_length_offset", "train.seed",
    "search.shortlist", "train.keep_last", "data.num_proc",
}
_BELOW_ONE = {"train.adam_beta1", "train.adam_beta2"}  # Adam's bias correction divides by 1 - beta**t
_AT_MOST_ONE = {"model.dropout", "model.transformer.attention_dropout", "train.label_smoothing",
                "train.teacher_forcing", "tokenizer.character_coverage", "train.plateau_factor"}


_LARGEST = 2**63 - 1  # beyond this an integer overflows numpy/torch (and float() for huge ones)


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin in (list, dict):
        return f"a {origin.__name__}"
    if tp is type(None):
        return "null"
    return {int: "an integer", float: "a number", str: "a string", bool: "true/false"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _matches(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return value in typing.get_args(tp)
    if origin in (Union, types.UnionType):
        return any(_matches(value, a) for a in typing.get_args(tp))
    if origin is list:
        (item,) = typing.get_args(tp)
        return isinstance(value, list) and all(_matches(v, item) for v in value)
    if origin is dict:
        key_tp, val_tp = typing.get_args(tp)
        return isinstance(value, dict) and all(
            _matches(k, key_tp) and _matches(v, val_tp) for k, v in value.items()
        )
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, tp)


def _accepts_float(tp: Any) -> bool:
    args = typing.get_args(tp) if typing.get_origin(tp) in (Union, types.UnionType) else (tp,)
    return float in args


def _float_or_keep(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text


def _closest(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    return f"did you mean '{close[0]}'?" if close else "valid keys: " + ", ".join(choices)


def _build(cls: type, values: Any, prefix: str, source: str) -> Any:
    """Turn a nested dict into dataclass `cls`, failing on unknown keys and wrong types."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise UserError(f"'{prefix or 'config'}' must be a mapping of keys, got {values!r}",
                        source, "write it as 'key: value' lines")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            choices = [f"{prefix}.{n}" if prefix else n for n in names]
            choices += [key for key, _, _ in iter_keys(cls, prefix) if key not in choices]
            raise UserError(f"unknown config key '{dotted}'", source, _closest(dotted, choices))
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value, dotted, source)
            continue
        if isinstance(value, str) and _accepts_float(tp):
            value = _float_or_keep(value)  # YAML 1.1 reads 3e-4 (no dot) as a string
        if not _matches(value, tp):
            raise UserError(f"'{dotted}' must be {_describe(tp)}, got {value!r}", source,
                            f"set {dotted} to {_describe(tp)}")
        _check_range(dotted, value, source)
        if _accepts_float(tp) and isinstance(value, int):
            value = float(value)
        kwargs[key] = value
    return cls(**kwargs)


def _check_range(dotted: str, value: Any, source: str) -> None:
    if value is None or isinstance(value, (bool, str, list, dict)):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise UserError(f"'{dotted}' must be a finite number, got {value!r}", source,
                        f"set {dotted} to a finite number (or null where that is allowed)")
    if isinstance(value, int) and abs(value) > _LARGEST:
        raise UserError(f"'{dotted}' is too large, got {str(value)[:20]}...", source,
                        f"set {dotted} to a smaller value")
    if dotted in _POSITIVE and value <= 0:
        raise UserError(f"'{dotted}' must be greater than 0, got {value!r}", source,
                        f"set {dotted} to a positive value")
    if dotted in _NON_NEGATIVE and value < 0:
        raise UserError(f"'{dotted}' must be 0 or more, got {value!r}", source,
                        f"set {dotted} to a non-negative value")
    if dotted in _AT_MOST_ONE and value > 1:
        raise UserError(f"'{dotted}' must be at most 1, got {value!r}", source,
                        f"set {dotted} to a value in [0, 1]")
    if dotted in _BELOW_ONE and value >= 1:
        raise UserError(f"'{dotted}' must be below 1, got {value!r}", source,
                        f"set {dotted} to a value in [0, 1), e.g. 0.9 or 0.98")


def _check_consistency(config: Config, source: str) -> None:
    m = config.model
    if m.is_rnn and m.rnn.bidirectional and m.rnn.hidden_size % 2:
        raise UserError(f"model.rnn.hidden_size must be even with a bidirectional encoder, got "
                        f"{m.rnn.hidden_size}", source,
                        "use an even hidden_size or model.rnn.bidirectional: false")
    if m.kind == "transformer" and m.embedding_size % m.transformer.heads:
        raise UserError(f"model.embedding_size ({m.embedding_size}) must divide by "
                        f"model.transformer.heads ({m.transformer.heads})", source,
                        "the heads split the width evenly: change one of them")
    if m.kind == "transformer" and m.transformer.positions == "learned" \
            and m.transformer.max_positions < config.data.max_length + 2:
        raise UserError(f"model.transformer.max_positions ({m.transformer.max_positions}) is below "
                        f"the longest sentence (data.max_length {config.data.max_length} + 2)",
                        source, "raise model.transformer.max_positions or lower data.max_length")
    if m.share_embeddings and not config.tokenizer.joint:
        raise UserError("model.share_embeddings needs one joint vocabulary", source,
                        "set tokenizer.joint: true or model.share_embeddings: false")
    if config.search.shortlist_per_source > STORED_PER_SOURCE:
        raise UserError(f"search.shortlist_per_source must be at most {STORED_PER_SOURCE}, got "
                        f"{config.search.shortlist_per_source}", source,
                        f"use a value from 1 to {STORED_PER_SOURCE}")
    _check_streaming(config, source)
    if config.train.batch_tokens < config.data.max_length + 2:
        raise UserError(
            f"train.batch_tokens ({config.train.batch_tokens}) is smaller than the longest "
            f"allowed sentence (data.max_length {config.data.max_length} + 2 special tokens)",
            source, "raise train.batch_tokens or lower data.max_length")


def _check_streaming(config: Config, source: str) -> None:
    """A stream has no known length, so a schedule that decays over the run needs a step limit."""
    t = config.train
    if config.data.streaming and t.schedule in ("linear", "cosine") and t.max_steps is None \
            and t.max_minutes is None:
        raise UserError(f"train.schedule {t.schedule} with data.streaming needs train.max_steps "
                        "or train.max_minutes (a stream's length is not known ahead)", source,
                        "set train.max_steps, or use another train.schedule")


def config_to_dict(config: Config) -> dict[str, Any]:
    return dataclasses.asdict(config)


def parse_override(text: str) -> tuple[list[str], Any]:
    """`model.rnn.hidden_size=512` -> (['model', 'rnn', 'hidden_size'], 512); the value is a YAML scalar."""
    if "=" not in text:
        raise UserError(f"--set needs KEY=VALUE, got '{text}'", "--set",
                        "write it like --set model.rnn.hidden_size=512")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise UserError(f"--set has an empty key in '{text}'", "--set",
                        "write it like --set model.rnn.hidden_size=512")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw  # not valid YAML: take it as a plain string
    return key.split("."), value


def apply_overrides(values: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set each dotted key in a nested dict; mappings are created as needed."""
    for text in overrides:
        parts, value = parse_override(text)
        parts = _current_name(parts)
        node = values
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = value
    return values


def _current_name(parts: list[str]) -> list[str]:
    """A round-1 key given to --set (model.hidden_size) as its current path (model.rnn.hidden_size)."""
    if len(parts) == 2 and parts[0] == "model" and parts[1] in LEGACY_MODEL_KEYS:
        new = LEGACY_MODEL_KEYS[parts[1]]
        warnings.warn(f"--set model.{parts[1]} is deprecated, read as model.{new}", FutureWarning,
                      stacklevel=4)
        return ["model", *new.split(".")]
    return parts


def read_yaml(path: Path) -> dict[str, Any]:
    where = str(path)
    if not path.exists():
        raise UserError("config file not found", where, "check the path")
    if path.is_dir():
        raise UserError("config path is a folder, not a YAML file", where, "name a .yaml file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read config: {exc}", where, "check the file") from None
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"{where}, line {mark.line + 1}" if mark is not None else where
        problem = getattr(exc, "problem", None) or "invalid YAML"
        if isinstance(exc, yaml.constructor.ConstructorError):  # !!python/... and other tags
            raise UserError(f"YAML tag refused: {problem}", line,
                            "a config holds plain values only; remove the '!!' tag") from None
        raise UserError(f"YAML syntax error: {problem}", line, "fix the YAML syntax") from None
    if values is None:
        raise UserError("config file is empty", where,
                        "add at least a 'data:' section (every other key has a default)")
    if not isinstance(values, dict):
        raise UserError("config must be a mapping of sections", where,
                        "start with a section such as 'data:'")
    return values


def config_from_dict(values: dict[str, Any], source: str = "config",
                     warn_legacy: bool = True) -> Config:
    values = migrate_legacy_keys(values, source, warn_legacy)
    config = _build(Config, values, "", source)
    _check_consistency(config, source)
    return config


def model_config(**values: Any) -> ModelConfig:
    """A validated ModelConfig from keyword values, sections as dicts: for tests and notebooks,
    e.g. `model_config(kind="luong", rnn={"hidden_size": 64}, attention={"score": "dot"})`."""
    return _build(ModelConfig, values, "model", "model_config()")


def migrate_legacy_keys(values: dict[str, Any], source: str, warn: bool = True) -> dict[str, Any]:
    """A copy of `values` with round-1 flat `model.*` keys moved to their sections (one warning)."""
    model = values.get("model") if isinstance(values, dict) else None
    if not isinstance(model, dict) or not LEGACY_MODEL_KEYS.keys() & model.keys():
        return values
    model, moved = dict(model), []
    for old, new in LEGACY_MODEL_KEYS.items():
        if old not in model:
            continue
        section, key = new.split(".")
        value = model.pop(old)
        child = model.get(section)
        child = dict(child) if isinstance(child, dict) else {}
        if key in child and child[key] != value:
            raise UserError(f"both model.{old} (old name) and model.{new} are set, to different "
                            f"values", source, f"keep model.{new} only")
        child[key] = value
        model[section] = child
        moved.append(f"model.{new}")
    if warn and source not in _WARNED:  # once per file, however often it is read
        _WARNED.add(source)
        warnings.warn(f"{source}: flat model keys are deprecated, read as {', '.join(moved)}",
                      FutureWarning, stacklevel=3)
    return {**values, "model": model}


def load_config(path: Path | str | None, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (or none: all defaults), apply `--set` overrides, validate."""
    values = read_yaml(Path(path)) if path is not None else {}
    values = migrate_legacy_keys(values, str(path))
    values = apply_overrides(values, list(overrides or []))
    source = str(path) if path is not None else "--set"
    if overrides:
        source += " with --set"
    return config_from_dict(values, source)


def save_config(config: Config, path: Path) -> None:
    from seqattn.files import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(config_to_dict(config), sort_keys=False))


def iter_keys(cls: type = Config, prefix: str = ""):
    """(dotted key, type description, default, comment-free) for every leaf key, in order."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        dotted = f"{prefix}.{f.name}" if prefix else f.name
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            yield from iter_keys(tp, dotted)
        else:
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            yield dotted, _describe(tp), default
