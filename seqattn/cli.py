"""The `seqattn` command line: each command parses, calls one library function, reports.

Exit codes: 0 success, 1 a failed run, 2 a user error (one line on stderr), 130 interrupted.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import traceback
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer

from seqattn.errors import Interrupted, RunFailed, UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train, evaluate and run translation models with and without attention.")

_state = {"debug": False}

ConfigArg = Annotated[Path, typer.Argument(help="YAML config (only what differs from defaults).")]
SetOpt = Annotated[Optional[list[str]], typer.Option(
    "--set", help="Override a config key: --set model.rnn.hidden_size=512 (repeatable).")]
RunDirOpt = Annotated[Optional[Path], typer.Option(
    "--run-dir", help="Run directory [default: runs/<config file stem>].")]
RunDirArg = Annotated[Path, typer.Argument(help="Run directory written by 'seqattn train'.")]
BeamOpt = Annotated[Optional[int], typer.Option("--beam", min=1, help="Beam size (1 = greedy).")]
CheckpointOpt = Annotated[Optional[str], typer.Option(
    "--checkpoint", help="best.pt (default), last.pt, or a path.")]
SplitOpt = Annotated[Optional[str], typer.Option("--split", help="Split [default: data.test_split].")]
OutputOpt = Annotated[Optional[Path], typer.Option("--output", help="Output file [default: stdout].")]
InputArg = Annotated[Optional[str], typer.Argument(
    help="Input file, one sentence per line; '-' or nothing for stdin.")]
NbestOpt = Annotated[int, typer.Option(
    "--nbest", min=1, help="Hypotheses per line (tab-separated: index, score, text).")]
BatchOpt = Annotated[Optional[int], typer.Option("--batch-size", min=1, help="Sentences per batch.")]
AttentionOpt = Annotated[Optional[Path], typer.Option(
    "--attention", help="Folder for attention JSON (every layer and head) + a PNG heatmap, one "
                        "per sentence.")]
AttentionLayerOpt = Annotated[Optional[int], typer.Option(
    "--attention-layer", help="Transformer decoder layer to draw and align with, from 1 "
                              "(default: the last). An RNN model has one.")]
AttentionHeadOpt = Annotated[str, typer.Option(
    "--attention-head", help="Head of that layer, from 1; 'mean' (the head-average) or 'all' "
                             "(a grid of every head; --align reads the mean).")]
AlignOpt = Annotated[bool, typer.Option(
    "--align", help="Append Pharaoh alignments from the attention: 'translation ||| 0-0 1-2', "
                    "source-target piece indices, one line per input line.")]
ErrorsOpt = Annotated[str, typer.Option(
    "--errors", help="Invalid UTF-8 or NUL in input: 'strict' (error) or 'replace'.")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue the run in RUN_DIR.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Start RUN_DIR again.")]


@app.callback()
def main(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False) -> None:
    _state["debug"] = debug or os.environ.get("SEQATTN_DEBUG") == "1"


def _fail(code: int, message: str, every_rank: bool = False) -> None:
    if _state["debug"]:
        traceback.print_exc()
    # Under torchrun every rank meets the same error; rank 0 says it once. A rank that lost
    # the others says so itself (rank 0 may be the one that died).
    if every_rank or os.environ.get("RANK", "0") == "0":
        typer.echo(message, err=True)
    raise typer.Exit(code)


def run_command(function, *args, **kwargs):
    """Call the library; turn our exceptions into one line and an exit code."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.showwarning = _show_warning
            return function(*args, **kwargs)
    except UserError as exc:
        _fail(2, exc.message())
    except RunFailed as exc:
        _fail(1, f"error: {exc}", every_rank=getattr(exc, "every_rank", False))
    except Interrupted as exc:
        _fail(130, str(exc))
    except KeyboardInterrupt:
        _fail(130, "interrupted")
    except BrokenPipeError:  # e.g. `seqattn translate ... | head`
        sys.stderr.close()
        raise typer.Exit(0) from None


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    typer.echo(f"warning: {message}", err=True)


def _say(message: str) -> None:
    typer.echo(message, err=True)


def _default_run_dir(config: Path, run_dir: Optional[Path]) -> Path:
    return run_dir if run_dir is not None else Path("runs") / config.stem


@app.command()
def prepare(config: ConfigArg, set_: SetOpt = None, run_dir: RunDirOpt = None) -> None:
    """Train SentencePiece on the training split and cache the encoded corpus."""
    from seqattn.config import load_config
    from seqattn.files import check_can_create_dir
    from seqattn.prepare import describe
    from seqattn.prepare import prepare as prepare_run

    def job():
        cfg = load_config(config, set_)
        folder = _default_run_dir(config, run_dir)
        check_can_create_dir(folder)
        prepared = prepare_run(cfg, folder, say=_say)
        _say(describe(prepared.stats))
        typer.echo(json.dumps({k: round(v, 4) if isinstance(v, float) else v
                               for k, v in prepared.stats.items()}))

    run_command(job)


@app.command()
def train(config: ConfigArg, set_: SetOpt = None, run_dir: RunDirOpt = None,
          resume: ResumeOpt = False, overwrite: OverwriteOpt = False) -> None:
    """Train a model (prepares the data first when needed)."""
    from seqattn.config import load_config

    def job():
        cfg = load_config(config, set_)
        from seqattn.train import train as train_run  # torch: only once the config is valid

        folder = _default_run_dir(config, run_dir)
        words = [*_launcher_words(), "train", str(config), "--run-dir", str(folder), "--resume"]
        for text in set_ or []:
            words += ["--set", text]
        hint = shlex.join(words)
        return train_run(cfg, folder, resume=resume, overwrite=overwrite, say=_say,
                         resume_command=hint)

    run_command(job)


def _launcher_words() -> list[str]:
    """How to start `seqattn` again as it was started: under torchrun, with its world's shape
    (from the environment torchrun gave this rank), so the resume hint keeps the ranks."""
    env = os.environ
    if "LOCAL_WORLD_SIZE" not in env or "WORLD_SIZE" not in env:
        return ["seqattn"]
    words = ["torchrun"]
    if env.get("GROUP_WORLD_SIZE", "1") != "1":  # several machines: this node's rank, rank 0's address
        words += ["--nnodes", env["GROUP_WORLD_SIZE"], "--node-rank", env.get("GROUP_RANK", "0"),
                  "--rdzv-endpoint", f"{env.get('MASTER_ADDR')}:{env.get('MASTER_PORT')}"]
    return [*words, "--nproc_per_node", env["LOCAL_WORLD_SIZE"], "-m", "seqattn"]


@app.command()
def evaluate(run_dir: RunDirArg, split: SplitOpt = None, beam: BeamOpt = None,
             set_: SetOpt = None, output: OutputOpt = None,
             checkpoint: CheckpointOpt = None) -> None:
    """Translate a split and score it (BLEU, chrF, perplexity)."""
    from tqdm import tqdm

    from seqattn.evaluate import evaluate as evaluate_run

    def job():
        with tqdm(unit="sent", file=sys.stderr, disable=None) as bar:
            report = evaluate_run(run_dir, split, beam, set_, output, checkpoint, progress=bar)
        _say(f"{report['split']}: BLEU {report['bleu']:.2f} chrF {report['chrf']:.2f} "
             f"ppl {report['ppl']:.2f} | {report['sentences']} sentences in "
             f"{report['seconds']:.1f}s ({report['sentences_per_second']} sent/s), beam "
             f"{report['beam']}")
        _say(f"  {report['sacrebleu signatures'].get('bleu', '')}")
        _say(f"  wrote {report['report_file']} and {report['hypotheses_file']}")
        typer.echo(json.dumps({k: report[k] for k in ("split", "bleu", "chrf", "ppl", "beam",
                                                       "sentences", "seconds")}))

    run_command(job)


@app.command()
def translate(run_dir: RunDirArg, input_file: InputArg = None, beam: BeamOpt = None,
              nbest: NbestOpt = 1, batch_size: BatchOpt = None, output: OutputOpt = None,
              attention: AttentionOpt = None, errors: ErrorsOpt = "strict",
              checkpoint: CheckpointOpt = None, set_: SetOpt = None, align: AlignOpt = False,
              attention_layer: AttentionLayerOpt = None,
              attention_head: AttentionHeadOpt = "mean") -> None:
    """Translate sentences, one per line, keeping the line count and order; optionally with
    attention pictures (--attention) and word alignments (--align)."""
    from seqattn.translate import run_translate

    run_command(run_translate, run_dir, input_file, beam, nbest, batch_size, output, attention,
                errors, checkpoint, set_, align=align, attention_layer=attention_layer,
                attention_head=attention_head)


@app.command()
def average(run_dir: RunDirArg,
            last: Annotated[int, typer.Option(help="How many of the newest step checkpoints.")] = 5,
            output: Annotated[str, typer.Option(
                help="File name in RUN_DIR/checkpoints, or a path.")] = "averaged.pt") -> None:
    """Average the run's last step checkpoints (train.keep_last) into one model."""
    from seqattn.average import average_run

    def job():
        target, chosen = average_run(run_dir, last, output)
        _say(f"averaged {len(chosen)} checkpoints ({chosen[0].name} .. {chosen[-1].name}) into "
             f"{target}; use it with --checkpoint {target.name}")
        typer.echo(str(target))

    run_command(job)


def _int_list(text: str, option: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise UserError(f"{option} needs positive integers separated by commas, got '{text}'",
                        option, f"e.g. {option} 1000,2000")
    return values


@app.command()
def bench(config: ConfigArg, set_: SetOpt = None, run_dir: RunDirOpt = None,
          batch_tokens: Annotated[str, typer.Option(help="Comma-separated batch sizes.")] = "2048",
          precision: Annotated[str, typer.Option(help="Comma-separated: fp32,bf16.")] = "fp32,bf16",
          beams: Annotated[str, typer.Option(help="Comma-separated beam sizes.")] = "1,5",
          steps: Annotated[int, typer.Option(min=1, help="Timed training steps.")] = 10,
          warmup: Annotated[int, typer.Option(min=1, help="Untimed steps first.")] = 3,
          sentences: Annotated[int, typer.Option(min=1, help="Dev sentences to decode.")] = 1000,
          by_length: Annotated[bool, typer.Option(
              "--by-length", help="Also time training on the shorter and the longer half of the "
                                  "sentences (first precision and batch size).")] = False,
          output_lengths: Annotated[Optional[str], typer.Option(
              "--output-lengths", help="Also time decoding exactly N tokens for each N "
                                       "(comma-separated), with the model's state and by re-running "
                                       "the prefix.")] = None,
          output: OutputOpt = None) -> None:
    """Measure training tokens/s, FLOP/s vs the matmul peak, decoding sentences/s, peak RSS."""
    from seqattn.bench import run_bench
    from seqattn.config import load_config
    from seqattn.files import atomic_write_text

    def job():
        cfg = load_config(config, set_)
        precisions = [p.strip() for p in precision.split(",") if p.strip()]
        if not precisions or set(precisions) - {"fp32", "bf16"}:
            raise UserError(f"--precision takes fp32 and/or bf16, got '{precision}'",
                            "--precision", "e.g. --precision fp32,bf16")
        folder = _default_run_dir(config, run_dir)
        report = run_bench(cfg, folder, _int_list(batch_tokens, "--batch-tokens"), precisions,
                           _int_list(beams, "--beams"), steps, warmup, sentences,
                           by_length=by_length, say=_say,
                           output_lengths=_int_list(output_lengths, "--output-lengths")
                           if output_lengths else None)
        text = json.dumps(report, indent=2) + "\n"
        if output is not None:
            atomic_write_text(output, text)
        typer.echo(text, nl=False)

    run_command(job)


RunDirsArg = Annotated[list[Path], typer.Argument(help="Run directories written by 'seqattn train'.")]


@app.command()
def serve(run_dirs: RunDirsArg,
          host: Annotated[str, typer.Option(help="Address to listen on; 0.0.0.0 opens it to the "
                                                 "network.")] = "127.0.0.1",
          port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free one).")] = 8000,
          max_lines: Annotated[int, typer.Option(min=1, help="Sentences per request, at most.")] = 64,
          max_chars: Annotated[int, typer.Option(min=1, help="Characters per sentence, at most.")] = 1000,
          max_beam: Annotated[int, typer.Option(min=1, help="Largest beam a request may ask for.")] = 16,
          device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto") -> None:
    """Serve runs over HTTP: a JSON API and an attention explorer page (pip install 'seqattn[serve]')."""
    from seqattn.serve import ServeLimits
    from seqattn.serve import serve as serve_runs

    limits = ServeLimits(max_lines=max_lines, max_chars=max_chars, max_beam=max_beam)
    run_command(serve_runs, run_dirs, host, port, limits, device, say=_say)


@app.command()
def plot(run_dirs: RunDirsArg,
         output: Annotated[Path, typer.Option("--output", help="Picture file (.png, .svg, .pdf).")] = Path(
             "curves.png"),
         x: Annotated[str, typer.Option("--x", help="x axis: steps, minutes or tokens.")] = "steps") -> None:
    """Draw training loss, dev loss and dev BLEU of one or more runs in one figure."""
    from seqattn.curves import plot_runs

    def job():
        written = plot_runs(run_dirs, output, x)
        _say(f"wrote learning curves of {len(run_dirs)} run(s) to {written}")
        typer.echo(str(written))

    run_command(job)


def entry() -> None:
    """Like `app()`, but a bad option or argument is one `error:` line too, not a usage box."""
    try:
        from typer._click import exceptions as click_errors  # typer >= 0.2x vendors click
    except ImportError:  # pragma: no cover - older typer
        from click import exceptions as click_errors

    no_args = getattr(click_errors, "NoArgsIsHelpError", ())  # click >= 8.2
    try:
        code = app(standalone_mode=False)
    except no_args as exc:  # bare `seqattn`: the help text
        exc.show()
        code = exc.exit_code
    except click_errors.ClickException as exc:
        ctx = getattr(exc, "ctx", None)
        where = ctx.command_path if ctx is not None else "seqattn"
        if _state["debug"] or os.environ.get("SEQATTN_DEBUG") == "1":
            traceback.print_exc()
        typer.echo(UserError(exc.format_message(), where, f"see '{where} --help'").message(),
                   err=True)
        code = exc.exit_code
    except typer.Abort:
        typer.echo("error: aborted", err=True)
        code = 1
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    entry()
