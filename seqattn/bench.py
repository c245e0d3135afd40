"""`seqattn bench`: training and decoding speed, FLOP/s against the measured matmul peak, memory.

Everything is measured in one process, one after another, so the figures are comparable as
ratios even on a shared, noisy machine. Model FLOPs are counted by torch's FlopCounterMode on
one real training step (every matrix product of forward and backward), not guessed.
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from seqattn.checkpoint import load_checkpoint, load_weights
from seqattn.config import Config
from seqattn.data import EncodedSplit, collate, make_batch, train_batches
from seqattn.device import resolve_device
from seqattn.errors import UserError
from seqattn.models import build_model
from seqattn.optim import make_optimizer
from seqattn.prepare import prepare
from seqattn.quantize import model_for_decoding
from seqattn.rundir import RunDir
from seqattn.search import decode
from seqattn.shortlist import build_table
from seqattn.tokenizer import BOS_ID
from seqattn.training_step import train_step


def matmul_peak(dtype: torch.dtype, device: torch.device, seconds: float = 1.0) -> float:
    """GFLOP/s of the largest product of training: [2048 x 512] x [512 x 8000] (output layer)."""
    a = torch.randn(2048, 512, dtype=dtype, device=device)
    b = torch.randn(512, 8000, dtype=dtype, device=device)
    a @ b
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ b
        runs += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * 2048 * 512 * 8000 * runs / (time.perf_counter() - started) / 1e9


def sentence_lengths(data: EncodedSplit) -> list[int]:
    """Pieces of the longer side of each pair."""
    return [max(len(s), len(t)) for s, t in zip(data.src, data.tgt)]


def length_halves(longest: list[int], batches: list[list[int]]) -> tuple[int, dict]:
    """The median of `longest` (see sentence_lengths) and the batches wholly at or below it /
    above it.

    Training batches are sorted by length inside pools, so nearly every batch falls in one half.
    """
    median = sorted(longest)[len(longest) // 2]
    halves: dict = {"short": [], "long": []}
    for batch in batches:
        sizes = [longest[i] for i in batch]
        if max(sizes) <= median:
            halves["short"].append(batch)
        elif min(sizes) > median:
            halves["long"].append(batch)
    return median, halves


def training_speed(config: Config, data: EncodedSplit, vocab: tuple[int, int], batch_tokens: int,
                   precision: str, steps: int, warmup: int, device: torch.device,
                   lengths: str = "all") -> dict:
    """Target tokens/s and achieved model GFLOP/s over `steps` timed training steps.

    `lengths`: `all` batches, or only those of the `short` or the `long` half of the sentences.
    """
    torch.manual_seed(config.train.seed)
    model = build_model(config.model, *vocab).to(device).train()
    optimizer = make_optimizer(model, config.train, device)  # as training makes it
    batches = train_batches(data, batch_tokens, config.train.seed, 0)
    extra = {}
    if lengths != "all":
        longest = sentence_lengths(data)
        median, halves = length_halves(longest, batches)
        if not halves[lengths]:
            raise UserError(f"--by-length: no training batch lies wholly in the {lengths} half of "
                            f"the sentences (median {median} pieces)", "--by-length",
                            "use a corpus with more spread in sentence length, or leave it out")
        batches = halves[lengths]
        sentences = sum(len(b) for b in batches)
        extra = {"lengths": lengths, "median_pieces": median,
                 "mean_pieces": round(sum(longest[i] for b in batches for i in b) / sentences, 1)}
    batches = (batches * (1 + (warmup + steps) // max(1, len(batches))))[: warmup + steps]
    prepared = [make_batch(data, b).to(device) for b in batches]
    def step(batch) -> None:  # what `seqattn train` runs per batch, at the config's lr
        train_step(model, optimizer, batch, config.train, precision, device, config.train.lr)

    for batch in prepared[:warmup]:
        step(batch)
    counter = FlopCounterMode(display=False)
    with counter:
        step(prepared[warmup])
    flops_first = counter.get_total_flops()
    tokens_first = prepared[warmup].num_tgt_tokens
    tokens, started = 0, time.perf_counter()
    for batch in prepared[warmup:]:
        step(batch)
        tokens += batch.num_tgt_tokens
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    flops = flops_first / tokens_first * tokens  # FLOPs scale with target tokens
    return {"batch_tokens": batch_tokens, "precision": precision, "steps": steps, **extra,
            "tgt_tokens_per_second": round(tokens / seconds, 1),
            "gflops_per_second": round(flops / seconds / 1e9, 2),
            "parameters": model.num_parameters()}


def add_fraction_of_peak(result: dict, peak_gflops: float) -> None:
    """Achieved model FLOP/s of a training_speed result as a share of the measured matmul peak."""
    result["fraction_of_peak"] = round(result["gflops_per_second"] / peak_gflops, 3)


def decoding_speed(model, data: EncodedSplit, config: Config, beam: int,
                   device: torch.device, shortlist=None, label: str = "exact") -> dict:
    search = config.search
    started = time.perf_counter()
    decode(model, data.src, beam, search.length_penalty, search.max_length_ratio,
           search.max_length_offset, search.batch_size, device, shortlist=shortlist)
    seconds = time.perf_counter() - started
    return {"beam": beam, "decoder": label, "sentences": len(data.src), "seconds": round(seconds, 2),
            "sentences_per_second": round(len(data.src) / seconds, 2)}


def decoders(model, config: Config, prepared, device: torch.device
             ) -> list[tuple[str, object, object]]:
    """(label, model, shortlist): exact fp32 search, and the config's fast path when it sets one."""
    search = config.search
    found = [("exact", model, None)]
    if search.shortlist > 0 or search.precision == "int8":
        shortlist, parts = None, [search.precision]
        if search.shortlist > 0:
            tokenizer = prepared.tokenizer
            shortlist = build_table(prepared.train.src, prepared.train.tgt,
                                    tokenizer.src_vocab_size, tokenizer.tgt_vocab_size,
                                    "bench").for_search(search)
            parts.insert(0, f"shortlist {search.shortlist}/{search.shortlist_per_source}")
        found.append(("+".join(parts), model_for_decoding(model, search.precision, device),
                      shortlist))
    return found


def peak_rss_mib() -> float:
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20, 1)


@torch.inference_mode()
def decoding_growth(model, data: EncodedSplit, lengths: list[int], device: torch.device,
                    sentences: int = 32) -> list[dict]:
    """Seconds to decode exactly T tokens (EOS ignored) for each T, step by step with the model's
    state (a Transformer's key/value cache), and by re-running the whole prefix at every step
    (what decoding costs without a cache). With the cache the time grows linearly in T."""
    batch = collate(data.src[:sentences], [np.empty(0, np.int32)] * min(sentences, len(data.src)),
                    list(range(min(sentences, len(data.src))))).to(device)
    rows = []
    for length in lengths:
        row = {"output_tokens": length, "sentences": batch.size}
        for label, run in (("cached", _decode_cached), ("prefix_rerun", _decode_rerun)):
            started = time.perf_counter()
            run(model, batch, length)
            row[f"{label}_seconds"] = round(time.perf_counter() - started, 3)
        rows.append(row)
    return rows


def _decode_cached(model, batch, length: int) -> None:
    state = model.encode(batch.src, batch.src_lengths)
    prev = torch.full((batch.size,), BOS_ID, dtype=torch.long, device=batch.src.device)
    for _ in range(length):
        log_probs, state = model.step(prev, state)
        prev = log_probs.argmax(-1)


def _decode_rerun(model, batch, length: int) -> None:
    prefix = torch.full((batch.size, 1), BOS_ID, dtype=torch.long, device=batch.src.device)
    for _ in range(length):
        logits, _ = model.teacher_forced(batch.src, batch.src_lengths, prefix)
        prefix = torch.cat([prefix, logits[:, -1].argmax(-1, keepdim=True)], dim=1)


def run_bench(config: Config, run_dir: Path, batch_tokens: list[int], precisions: list[str],
              beams: list[int], steps: int, warmup: int, sentences: int, by_length: bool = False,
              output_lengths: list[int] | None = None, say=print) -> dict:
    if config.data.streaming:  # the figures need batches chosen ahead, from the stored corpus
        raise UserError("bench measures a stored corpus, not a stream", "data.streaming",
                        "run it with --set data.streaming=false")
    device = resolve_device(config.train.device)
    prepared = prepare(config, run_dir, with_valid=True, say=say)
    vocab = (prepared.tokenizer.src_vocab_size, prepared.tokenizer.tgt_vocab_size)
    report: dict = {"device": str(device), "threads": torch.get_num_threads(),
                    "model": config.model.kind, "peak_gflops": {}, "training": [], "decoding": []}
    report["peak_gflops"] = _peaks(precisions, device, say)
    report["training"] = _training_rows(config, prepared, vocab, batch_tokens, precisions, steps,
                                        warmup, device, report["peak_gflops"], say)
    if by_length:  # the first precision and batch size, on the short and the long half
        report["training_by_length"] = _by_length_rows(config, prepared, vocab, batch_tokens[0],
                                                       precisions[0], steps, warmup, device,
                                                       report["peak_gflops"], say)
    model = _decoding_model(config, vocab, run_dir, device, report)
    sample = EncodedSplit(prepared.valid.src[:sentences], prepared.valid.tgt[:sentences], [], [])
    for label, decoder, shortlist in decoders(model, config, prepared, device):
        for beam in beams:
            result = decoding_speed(decoder, sample, config, beam, device, shortlist, label)
            report["decoding"].append(result)
            say(f"decode beam {beam}, {label}: {result['sentences_per_second']} sentences/s")
    if output_lengths:
        report["decoding_growth"] = decoding_growth(model, sample, output_lengths, device)
        for row in report["decoding_growth"]:
            say(f"decode {row['sentences']} sentences x {row['output_tokens']} tokens: "
                f"{row['cached_seconds']} s with the model's state, {row['prefix_rerun_seconds']} s "
                f"re-running the prefix")
    report["peak_rss_mib"] = peak_rss_mib()
    return report


def _peaks(precisions: list[str], device: torch.device, say) -> dict[str, float]:
    peaks = {}
    for precision in precisions:
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        peaks[precision] = round(matmul_peak(dtype, device), 1)
        say(f"matmul peak {precision}: {peaks[precision]} GFLOP/s")
    return peaks


def _training_rows(config, prepared, vocab, batch_tokens, precisions, steps, warmup, device,
                   peaks: dict, say) -> list[dict]:
    rows = []
    for precision in precisions:
        for tokens in batch_tokens:
            result = training_speed(config, prepared.train, vocab, tokens, precision, steps,
                                    warmup, device)
            add_fraction_of_peak(result, peaks[precision])
            rows.append(result)
            say(f"train {precision} batch {tokens}: {result['tgt_tokens_per_second']} tgt tok/s, "
                f"{result['gflops_per_second']} GFLOP/s ({result['fraction_of_peak']:.0%} of peak)")
    return rows


def _by_length_rows(config, prepared, vocab, tokens, precision, steps, warmup, device,
                    peaks: dict, say) -> list[dict]:
    rows = []
    for half in ("short", "long"):
        result = training_speed(config, prepared.train, vocab, tokens, precision, steps, warmup,
                                device, lengths=half)
        add_fraction_of_peak(result, peaks[precision])
        rows.append(result)
        side = "<=" if half == "short" else ">"
        say(f"train {precision} batch {tokens}, {half} half (longer side {side} "
            f"{result['median_pieces']} pieces, mean {result['mean_pieces']}): "
            f"{result['tgt_tokens_per_second']} tgt tok/s ({result['fraction_of_peak']:.0%} of peak)")
    return rows


def _decoding_model(config, vocab, run_dir: Path, device: torch.device, report: dict):
    """A trained model decodes realistic lengths (a fresh one runs to the limit): the run's
    best.pt when there is one."""
    torch.manual_seed(0)
    model = build_model(config.model, *vocab).to(device).eval()
    checkpoint = RunDir(run_dir).best
    if checkpoint.exists():
        load_weights(model, load_checkpoint(checkpoint), checkpoint)
        report["decoding_checkpoint"] = str(checkpoint)
    return model
