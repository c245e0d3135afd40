"""The config reference, docs/config.md, generated from seqattn.config so that it cannot drift.

Keys, types and defaults come from `seqattn.config.iter_keys`; a key's meaning is the trailing
`# comment` on its dataclass field line, else an entry of MEANINGS below. The table goes between
the two markers START and END of the target file; the prose around them is left alone.

  python scripts/config_reference.py                  print the Markdown table
  python scripts/config_reference.py --write          regenerate docs/config.md's table
  python scripts/config_reference.py --check          exit 1 if docs/config.md's table is stale
  python scripts/config_reference.py --check FILE     the same for another file with the markers
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import inspect
import io
import sys
import tokenize
import typing
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from anywhere, no install needed

from seqattn import config as config_module  # noqa: E402

START = "<!-- config-reference:start -->"
END = "<!-- config-reference:end -->"
TARGET = ROOT / "docs" / "config.md"  # what --check and --write handle when given no file

# Meanings of the fields whose line in seqattn/config.py has no trailing comment.
# A field that gains a comment must leave this table (the comment wins; tests check).
MEANINGS = {
    "data.src_lang": "source language code: a column name, or a key of the `translation` column",
    "data.tgt_lang": "target language code, like `data.src_lang`",
    "data.train_split": "split to train on",
    "data.valid_split": "split to validate on during training",
    "data.test_split": "split that `seqattn evaluate` scores by default",
    "tokenizer.type": "SentencePiece model type",
    "tokenizer.vocab_size": "pieces per SentencePiece model",
    "model.kind": "`seq2seq` (no attention), `bahdanau`, `luong` or `transformer`; each reads "
                  "its own section below (`rnn` + `attention` for the first three)",
    "model.dropout": "dropout probability on embeddings and between layers (the transformer: "
                     "also on every residual branch)",
    "model.rnn.cell": "recurrent cell of encoder and decoder",
    "model.rnn.num_layers": "recurrent layers in the encoder and in the decoder",
    "model.rnn.bidirectional": "read the source in both directions",
    "model.transformer.encoder_layers": "encoder layers (self-attention + feed-forward)",
    "model.transformer.decoder_layers": "decoder layers (self-attention + cross-attention + "
                                        "feed-forward)",
    "model.transformer.activation": "non-linearity of the feed-forward sublayer",
    "train.max_epochs": "stop after this many epochs (null: no limit)",
    "train.max_steps": "stop after this many updates (null: no limit)",
    "train.max_minutes": "stop after this many minutes of training (null: no limit)",
    "train.lr": "peak learning rate",
    "train.seed": "random seed of initialisation, batching and dropout",
    "train.device": "`auto` picks cuda, then mps, then cpu",
    "train.precision": "`auto`: bf16 where the hardware has fast bf16, else fp32",
    "train.optimizer": "Adam, or AdamW (decoupled weight decay)",
    "train.weight_decay": "weight decay of the optimizer",
    "train.label_smoothing": "label smoothing of the cross-entropy; 0 = none",
    "train.schedule": "learning-rate schedule; `linear` and `cosine` decay to `train.min_lr` by "
                      "the end of the run (the first of max_steps, max_epochs, max_minutes to bind)",
    "train.warmup_steps": "steps of linear warmup to `train.lr`",
    "train.plateau_factor": "`plateau`: the lr is multiplied by this when the dev metric stalls",
    "train.min_lr": "floor of the learning rate (where `linear` and `cosine` end)",
    "train.best_metric": "dev metric that picks `best.pt` (and drives `plateau` and `patience`)",
    "train.log_every": "steps between train events in metrics.jsonl",
    "train.valid_every": "steps between validations",
    "train.save_every": "steps between writes of `last.pt`",
    "search.beam_size": "default beam size of `evaluate` and `translate` (1 = greedy)",
    "search.max_length_offset": "added to the output length limit (see `max_length_ratio`)",
    "search.shortlist": "0 = the output layer scores every target piece (exact search). N > 0 = a "
                        "lexical shortlist: each decoding batch scores only the N most frequent "
                        "target pieces plus `shortlist_per_source` pieces per source piece, "
                        "ranked by co-occurrence in the training split (built once, kept in "
                        "RUN_DIR/shortlist.pt); faster, approximate",
    "search.shortlist_per_source": "target pieces the shortlist allows per source piece (1-100)",
    "search.precision": "`int8`: decode with 8-bit weights (dynamic quantization, CPU only); "
                        "`fp32`: exact",
}


def section_classes() -> dict[str, type]:
    """'data' -> DataConfig, ...: the sections of Config, in order."""
    hints = typing.get_type_hints(config_module.Config)
    return {f.name: hints[f.name] for f in dataclasses.fields(config_module.Config)}


def field_comments(cls: type) -> dict[str, str]:
    """The trailing `# comment` of each field line in a dataclass's source."""
    source = inspect.getsource(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    comments: dict[str, str] = {}
    first_name: dict[int, str] = {}  # line -> the first name on it
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        line = token.start[0]
        if token.type == tokenize.NAME and line not in first_name:
            first_name[line] = token.string
        elif token.type == tokenize.COMMENT and first_name.get(line) in names:
            comments[first_name[line]] = token.string.lstrip("#").strip()
    return comments


def all_comments() -> dict[str, str]:
    comments: dict[str, str] = {}
    for section, cls in section_classes().items():
        _collect_comments(cls, section, comments)
    return comments


def _collect_comments(cls: type, prefix: str, comments: dict[str, str]) -> None:
    """Field comments of `cls` and of the sections nested in it (model.rnn, ...)."""
    for name, comment in field_comments(cls).items():
        comments[f"{prefix}.{name}"] = comment
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            _collect_comments(hints[f.name], f"{prefix}.{f.name}", comments)


def format_default(value) -> str:
    if value is None:
        return "`null`"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, str):
        return f"`{value}`"
    return f"`{value!r}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def reference_rows() -> list[tuple[str, str, str, str]]:
    """(key, type, default, meaning) for every config key; fails on a key with no meaning."""
    comments = all_comments()
    rows, missing = [], []
    for item in config_module.iter_keys():
        key, type_text, default = item[:3]
        meaning = comments.get(key) or MEANINGS.get(key)
        if not meaning:
            missing.append(key)
        rows.append((key, type_text, format_default(default), meaning or ""))
    if missing:
        raise SystemExit("error: no meaning for " + ", ".join(missing) + " (seqattn/config.py): "
                         "add a trailing '# comment' to the field, or an entry to MEANINGS in "
                         "scripts/config_reference.py")
    return rows


def reference_table() -> str:
    lines = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    lines += [f"| `{key}` | {_cell(type_text)} | {_cell(default)} | {_cell(meaning)} |"
              for key, type_text, default, meaning in reference_rows()]
    return "\n".join(lines) + "\n"


def stale_meanings() -> list[str]:
    """MEANINGS entries for keys that no longer exist or that now have a comment."""
    keys = {item[0] for item in config_module.iter_keys()}
    comments = all_comments()
    return sorted(k for k in MEANINGS if k not in keys or k in comments)


def marked_block(text: str, where: str) -> tuple[int, int]:
    """Start and end offsets of the text between the markers."""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"error: no '{START}' ... '{END}' block ({where}): add the two markers "
                         f"where the table belongs, then run with --write")
    return start + len(START), end


def block_text(table: str) -> str:
    return "\n" + table


def check(path: Path) -> int:
    text = path.read_text(encoding="utf-8")
    start, end = marked_block(text, str(path))
    expected = block_text(reference_table())
    if text[start:end] == expected:
        return 0
    diff = difflib.unified_diff(text[start:end].splitlines(keepends=True),
                                expected.splitlines(keepends=True), f"{path} (now)", "generated")
    sys.stderr.writelines(diff)
    print(f"error: the config reference in {path} is out of date: run "
          f"python scripts/config_reference.py --write {path}", file=sys.stderr)
    return 1


def write(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    start, end = marked_block(text, str(path))
    path.write_text(text[:start] + block_text(reference_table()) + text[end:], encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", type=Path, nargs="?", const=TARGET, metavar="FILE",
                       help="exit 1 if FILE's table (default docs/config.md) is not the generated one")
    group.add_argument("--write", type=Path, nargs="?", const=TARGET, metavar="FILE",
                       help="replace FILE's table (default docs/config.md) by the generated one")
    args = parser.parse_args(argv)
    if args.check:
        return check(args.check)
    if args.write:
        write(args.write)
        return 0
    sys.stdout.write(reference_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
