"""`seqattn translate`: line-exact text I/O, one output line per input line, in order.

The Python API it runs on is seqattn/api.py (`seqattn.load`).

Lines are split on '\\n' only (not on the other Unicode line breaks that str.splitlines knows),
so odd characters never shift a line. Invalid UTF-8 and NUL bytes are an error naming the line,
or replaced with U+FFFD under `--errors replace`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from seqattn.alignment import Head, check_choice, parse_head
from seqattn.errors import UserError
from seqattn.files import atomic_write_text, check_writable_file


def decode_lines(data: bytes, source: str, errors: str = "strict") -> list[str]:
    if errors not in ("strict", "replace"):
        raise UserError(f"unknown --errors value '{errors}'", "--errors", "use strict or replace")
    raw_lines = data.split(b"\n")
    if raw_lines and raw_lines[-1] == b"":
        raw_lines.pop()  # the final newline ends the last line, it does not start a new one
    lines = []
    for number, raw in enumerate(raw_lines, start=1):
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if b"\x00" in raw:
            if errors == "strict":
                raise UserError(f"NUL byte in input line {number}", source,
                                "remove it, or pass --errors replace")
            raw = raw.replace(b"\x00", "\ufffd".encode())
        try:
            lines.append(raw.decode("utf-8", errors=errors))
        except UnicodeDecodeError as exc:
            raise UserError(f"invalid UTF-8 in input line {number} (byte {exc.start + 1})", source,
                            "convert the file to UTF-8, or pass --errors replace") from None
    return lines


def read_input(input_file: str | None, errors: str) -> list[str]:
    if input_file is None or input_file == "-":
        return decode_lines(sys.stdin.buffer.read(), "stdin", errors)
    path = Path(input_file)
    if not path.is_file():
        raise UserError("input file not found" if not path.exists() else "input is not a file",
                        str(path), "give a text file with one sentence per line, or - for stdin")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read input ({exc.strerror})", str(path), "check permissions") from None
    return decode_lines(data, str(path), errors)


def check_attention_dir(path: Path) -> None:
    from seqattn.plot import require_matplotlib

    if path.exists() and not path.is_dir():
        raise UserError("--attention path is a file", str(path), "give a folder")
    parent = path.parent if str(path.parent) else Path(".")
    if not path.exists() and not parent.is_dir():
        raise UserError("parent folder of --attention does not exist", str(parent), "create it")
    require_matplotlib()


def format_results(results, nbest: int, align: bool = False) -> list[str]:
    """Output lines: the translation (with `align`: `translation ||| 0-0 1-2 ...`, as OpenNMT-py
    writes it), or with nbest > 1 `index<TAB>score<TAB>text` per hypothesis."""
    if nbest == 1:
        return [f"{r.text} ||| {r.alignment}" if align else r.text for r in results]
    lines = []
    for index, r in enumerate(results):
        options = r.nbest or [(r.score, r.text)]
        lines.extend(f"{index}\t{score:.4f}\t{text}" for score, text in options)
    return lines


def attention_record(r) -> dict:
    """What NNNNN.json holds: the pieces, the view drawn, and (Transformer) every layer and head."""
    record = {"source": r.source, "translation": r.text, "src_pieces": r.src_pieces,
              "tgt_pieces": r.tgt_pieces, "attention_label": r.attention_label,
              "attention": r.attention.round(5).tolist(),  # [T, S]
              "alignment": r.alignment}
    if r.attention_layers is not None:
        record["attention_layers"] = r.attention_layers.round(5).tolist()  # [L, H, T, S]
    return record


def write_attention(folder: Path, results, layer: int | None = None, head: Head = "mean") -> None:
    """NNNNN.json and NNNNN.png per translated line (1-based line numbers); `head` "all": the
    picture is a grid of every head of the chosen layer."""
    from seqattn.plot import save_attention_grid_png, save_attention_png

    folder.mkdir(parents=True, exist_ok=True)
    for index, r in enumerate(results, start=1):
        if r.attention is None:
            continue
        stem = folder / f"{index:05d}"
        atomic_write_text(stem.with_suffix(".json"),
                          json.dumps(attention_record(r), ensure_ascii=False) + "\n")
        if head == "all" and r.attention_layers is not None:
            count = len(r.attention_layers)
            chosen = count if layer is None else layer
            save_attention_grid_png(stem.with_suffix(".png"), r.attention_layers[chosen - 1],
                                    r.src_pieces, r.tgt_pieces,
                                    title=f"layer {chosen}/{count}, every head\n{r.text[:80]}")
        else:
            save_attention_png(stem.with_suffix(".png"), r.attention, r.src_pieces, r.tgt_pieces,
                               title=f"{r.attention_label}\n{r.text[:80]}")


def check_view_options(align: bool, attention: Path | None, nbest: int, layer: int | None,
                       head: str | int) -> Head:
    """The checks of --align/--attention-* that need no model; returns the parsed head."""
    chosen = parse_head(head)
    if (layer is not None or chosen != "mean") and attention is None and not align:
        option = "--attention-layer" if layer is not None else "--attention-head"
        raise UserError(f"{option} chooses what --attention draws or --align reads", option,
                        "add --attention DIR or --align, or leave it out")
    if layer is not None and layer < 1:
        raise UserError(f"--attention-layer counts from 1, got {layer}", "--attention-layer",
                        "use 1 for the first layer, or leave it out for the last")
    if align and nbest > 1:
        raise UserError("--align writes one line per input line; --nbest writes several",
                        "--align", "use --nbest 1 with --align")
    return chosen


def check_model_attention(run_dir: Path, overrides: list[str] | None, align: bool,
                          layer: int | None, head: Head) -> None:
    """From the run's config alone, before the model loads: it has the attention asked for."""
    from seqattn.api import attention_grid, load_run_config

    config = load_run_config(run_dir, overrides)
    model, grid = config.model, attention_grid(config)
    if align and grid is None:
        raise UserError(f"a {model.kind} model has no attention to align with", "--align",
                        "use a model with attention (bahdanau, luong, transformer)")
    check_choice(layer, head, grid, model.kind)


def run_translate(run_dir: Path, input_file: str | None, beam: int | None, nbest: int,
                  batch_size: int | None, output: Path | None, attention: Path | None,
                  errors: str, checkpoint: str | None, overrides: list[str] | None = None, *,
                  align: bool = False, attention_layer: int | None = None,
                  attention_head: str | int = "mean") -> None:
    if output is not None:
        check_writable_file(output, "--output")
    if attention is not None:
        check_attention_dir(attention)
    head = check_view_options(align, attention, nbest, attention_layer, attention_head)
    interactive = input_file is None and sys.stdin.isatty()
    lines = None if interactive else read_input(input_file, errors)
    from seqattn.api import Translator  # torch: only once the input is known to be good

    check_model_attention(run_dir, overrides, align, attention_layer, head)
    translator = Translator(run_dir, checkpoint=checkpoint, overrides=overrides)
    if interactive:
        return _interactive(translator, beam, align, attention_layer, head)
    results = translator.translate(lines, beam=beam, nbest=nbest, batch_size=batch_size,
                                   attention=attention is not None or align,
                                   attention_layer=attention_layer, attention_head=head)
    text = "".join(line + "\n" for line in format_results(results, nbest, align))
    if output is not None:
        atomic_write_text(output, text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    if attention is not None:
        write_attention(attention, results, attention_layer, head)
        model_note = "" if translator.model.has_attention else " (this model has no attention)"
        print(f"attention written to {attention}{model_note}", file=sys.stderr)


def _interactive(translator, beam: int | None, align: bool = False, layer: int | None = None,
                 head: Head = "mean") -> None:
    print("type a sentence and press enter; Ctrl-D to quit", file=sys.stderr)
    while True:
        print("> ", end="", file=sys.stderr, flush=True)  # the prompt never mixes into stdout
        try:
            line = sys.stdin.readline()
        except UnicodeDecodeError:
            print("error: that line is not valid text in the terminal's encoding; try again",
                  file=sys.stderr)
            continue
        if not line:  # Ctrl-D
            print(file=sys.stderr)
            return
        text = line.rstrip("\r\n")
        result = translator.translate([text], beam=beam, attention=align, attention_layer=layer,
                                      attention_head=head)
        print(format_results(result, 1, align)[0], flush=True)


def __getattr__(name: str):
    """Round 1's import path of the Python API (`from seqattn.translate import Translator`)."""
    if name in ("Translator", "Translation", "load", "load_run_config"):
        from seqattn import api

        return getattr(api, name)
    raise AttributeError(f"module 'seqattn.translate' has no attribute '{name}'")
