"""The Python API over a trained run: `seqattn.load(run_dir).translate([...])`.

    >>> import seqattn
    >>> translator = seqattn.load("runs/bahdanau")
    >>> result = translator.translate(["Ein Hund läuft."], beam=5)[0]
    >>> result.text, result.score, result.attention.shape  # attention: [target, source] pieces
    >>> result.alignment  # Pharaoh pairs 'source-target' of piece indices: '0-0 1-2 ...'

A Transformer has a cross-attention per decoder layer and head: `result.attention` is one view of
them (default: the mean of the last layer's heads, `result.attention_label` says which),
`result.attention_layers` all of them, `[layers, heads, target, source]`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seqattn.alignment import Head, as_layers, check_choice, describe_view, parse_head, pharaoh, select_view
from seqattn.checkpoint import check_compatible, load_checkpoint, load_weights
from seqattn.config import Config, apply_overrides, config_from_dict, migrate_legacy_keys, read_yaml
from seqattn.device import resolve_device
from seqattn.errors import UserError
from seqattn.models import RNN_DECODERS, EncoderDecoder, build_model
from seqattn.quantize import model_for_decoding
from seqattn.rundir import RunDir
from seqattn.search import decode
from seqattn.shortlist import load_or_build
from seqattn.tokenizer import Tokenizer

EOS_PIECE = "</s>"


@dataclass
class Translation:
    source: str
    text: str
    score: float
    src_pieces: list[str] = field(default_factory=list)  # source pieces + </s>
    tgt_pieces: list[str] = field(default_factory=list)  # output pieces (+ </s> if it ended)
    attention: np.ndarray | None = None  # [len(tgt_pieces), len(src_pieces)], rows sum to 1
    nbest: list[tuple[float, str]] = field(default_factory=list)  # (score, text), best first
    # Transformer only (None for the RNN kinds): every decoder layer's cross-attention per head.
    attention_layers: np.ndarray | None = None  # [layers, heads, len(tgt_pieces), len(src_pieces)]
    attention_label: str = ""  # what `attention` shows, e.g. "layer 3/3, mean of 4 heads"

    @property
    def alignment(self) -> str:
        """Pharaoh pairs 'i-j' (source piece i, target piece j; no EOS) from `attention`."""
        if self.attention is None:
            return ""
        tgt_len = len(self.tgt_pieces) - (1 if self.tgt_pieces[-1:] == [EOS_PIECE] else 0)
        return pharaoh(self.attention, len(self.src_pieces) - 1, tgt_len)


def attention_grid(config: Config) -> tuple[int, int] | None:
    """(layers, heads) of the cross-attention a model of `config` reports; None: it has none."""
    cfg = config.model
    if cfg.kind == "transformer":
        return cfg.transformer.decoder_layers, cfg.transformer.heads
    return (1, 1) if RNN_DECODERS[cfg.kind].has_attention else None


def load_run_config(run_dir: Path, overrides: list[str] | None = None) -> Config:
    """The run's resolved config.yaml, with `--set` overrides on top."""
    run = RunDir(run_dir)
    run.require()
    values = migrate_legacy_keys(read_yaml(run.config), str(run.config))
    values = apply_overrides(values, list(overrides or []))
    return config_from_dict(values, str(run.config) + (" with --set" if overrides else ""))


class Translator:
    """A trained model with its tokenizer and search settings."""

    def __init__(self, run_dir: str | Path, checkpoint: str | None = None, device: str = "auto",
                 overrides: list[str] | None = None) -> None:
        self.run_dir = Path(run_dir)
        run = RunDir(run_dir)
        self.config = load_run_config(self.run_dir, overrides)
        self.tokenizer = Tokenizer.load(run.tokenizer)
        self.checkpoint = run.pick_checkpoint(checkpoint)
        state = load_checkpoint(self.checkpoint)
        check_compatible(state, self.config, self.tokenizer, self.checkpoint)
        self.device = resolve_device(device)
        self.model: EncoderDecoder = build_model(self.config.model, self.tokenizer.src_vocab_size,
                                                 self.tokenizer.tgt_vocab_size)
        load_weights(self.model, state, self.checkpoint)
        self.model.to(self.device).eval()
        self.num_parameters = self.model.num_parameters()  # of the trained model, before int8
        search = self.config.search
        self.model = model_for_decoding(self.model, search.precision, self.device)
        self.max_source_pieces = self.config.data.max_length
        self.warned_long = False
        self.shortlist = None  # batch source ids -> the target ids it may output
        if search.shortlist > 0:
            self.shortlist = load_or_build(self.run_dir, self.config, self.tokenizer).for_search(search)

    def translate(self, sentences: list[str], beam: int | None = None, nbest: int = 1,
                  batch_size: int | None = None, attention: bool = True, progress=None,
                  attention_layer: int | None = None,
                  attention_head: Head = "mean") -> list[Translation]:
        """Translate sentences; a blank sentence gives an empty translation.

        `attention_layer` (1-based, default the last) and `attention_head` (1-based, "mean" or
        "all", which views the mean too) choose what `Translation.attention` shows.
        """
        search = self.config.search
        beam = beam or search.beam_size
        if nbest > beam:
            raise UserError(f"--nbest {nbest} is larger than the beam {beam}", "--nbest",
                            "use --nbest at most --beam")
        if attention:
            attention_head = parse_head(attention_head, "attention_head")  # "2" as 2
            self.check_attention_choice(attention_layer, attention_head, "attention_layer",
                                        "attention_head")
        results = [Translation(source=s, text="", score=0.0) for s in sentences]
        todo = [i for i, s in enumerate(sentences) if s.strip()]
        sources = self._truncate(self.tokenizer.encode_src([sentences[i] for i in todo]), todo)
        arrays = [np.asarray(ids, dtype=np.int32) for ids in sources]
        hyps = decode(self.model, arrays, beam, search.length_penalty, search.max_length_ratio,
                      search.max_length_offset, batch_size or search.batch_size, self.device,
                      nbest=nbest, return_attention=attention, progress=progress,
                      shortlist=self.shortlist)
        for i, ids, options in zip(todo, sources, hyps):
            self._fill(results[i], ids, options)
            if results[i].attention is not None:
                self._choose_view(results[i], attention_layer, attention_head)
        return results

    def check_attention_choice(self, layer: int | None, head: Head,
                               layer_option: str = "--attention-layer",
                               head_option: str = "--attention-head") -> None:
        """One-line UserError unless this model has attention `layer` and `head`."""
        grid = attention_grid(self.config) if self.model.has_attention else None
        check_choice(layer, head, grid, self.config.model.kind, layer_option, head_option)

    def _truncate(self, sources: list[list[int]], todo: list[int]) -> list[list[int]]:
        """Sources cut to data.max_length pieces (what the model was trained on), warning once."""
        for k, ids in enumerate(sources):
            if len(ids) > self.max_source_pieces:
                if not self.warned_long:
                    warnings.warn(f"input line {todo[k] + 1} has {len(ids)} pieces; lines longer "
                                  f"than {self.max_source_pieces} are truncated", stacklevel=3)
                    self.warned_long = True
                sources[k] = ids[: self.max_source_pieces]
        return sources

    def _fill(self, result: Translation, ids: list[int], options: list) -> None:
        """`result` from its hypotheses (best first), with the best one's raw attention."""
        best = options[0]
        result.text = self._clean(self.tokenizer.decode_tgt(best.tokens))
        result.score = best.score
        result.nbest = [(h.score, self._clean(self.tokenizer.decode_tgt(h.tokens)))
                        for h in options]
        result.src_pieces = self.tokenizer.src_pieces(ids) + [EOS_PIECE]
        result.tgt_pieces = self.tokenizer.tgt_pieces(best.tokens) + (
            [EOS_PIECE] if best.ended else [])
        result.attention = best.attention  # [T, S] or [T, layers, heads, S] until a view is chosen

    def _choose_view(self, result: Translation, layer: int | None, head: Head) -> None:
        """`result.attention` -> the chosen [T, S] view; the Transformer's layers kept beside it."""
        kind = self.config.model.kind
        layers = as_layers(result.attention)  # [L, H, T, S]
        result.attention = select_view(layers, layer, head, kind)
        result.attention_label = describe_view(layers, layer, head, kind)
        result.attention_layers = layers if kind == "transformer" else None

    @staticmethod
    def _clean(text: str) -> str:
        """One output line per input line: no line breaks inside a translation."""
        return " ".join(text.splitlines()) if ("\n" in text or "\r" in text) else text


def load(run_dir: str | Path, checkpoint: str | None = None, device: str = "auto",
         overrides: list[str] | None = None) -> Translator:
    """Load a trained run for translation: `seqattn.load("runs/bahdanau")`.

    `overrides`: `--set` strings for the search settings, e.g. `["search.shortlist=500"]`.
    """
    return Translator(run_dir, checkpoint=checkpoint, device=device, overrides=overrides)

