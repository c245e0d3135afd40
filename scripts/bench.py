"""The Python half of scripts/bench_peers.sh (shared/bench/PROTOCOL.md).

  to-text DATA_DIR TEXT_DIR      Multi30k JSON lines -> plain text, one sentence per line
  spm TEXT_DIR PREFIX            the joint unigram 8k SentencePiece model (+ PREFIX.pieces.txt)
  onmt-steps LOG BUDGET_S        train_steps that end an OpenNMT-py run near BUDGET_S seconds
  table WORK                     score every toolkit's test output; print and write the table

Needs sentencepiece and sacrebleu (the project's environment has both).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

SPLITS = {"train": ("train",), "validation": ("validation", "val", "valid", "dev"),
          "test": ("test",)}
# decode-only variants (bench_peers.sh): seqattn-fast = shortlist + int8, opennmt-b64 = batch 64
TOOLKITS = ("seqattn", "seqattn-fast", "joeynmt", "opennmt", "opennmt-b64")
BEAMS = (1, 5)


# ---------------------------------------------------------------------------------------------
# Data and subwords


def normalise(text: str) -> str:
    return " ".join(text.split())


def find_split_file(data_dir: Path, split: str) -> Path:
    for name in SPLITS[split]:
        path = data_dir / f"{name}.jsonl"
        if path.exists():
            return path
    raise SystemExit(f"error: no {' / '.join(n + '.jsonl' for n in SPLITS[split])} "
                     f"({data_dir}): point --data at the Multi30k JSON-lines folder")


def to_text(data_dir: Path, text_dir: Path, src: str = "de", tgt: str = "en") -> dict[str, int]:
    """Write train/validation/test .de/.en, whitespace-normalised; returns lines per split."""
    text_dir.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split in SPLITS:
        rows = [json.loads(line) for line in
                find_split_file(data_dir, split).read_text(encoding="utf-8").splitlines()
                if line.strip()]
        for lang in (src, tgt):
            lines = [normalise(row[lang] or "") for row in rows]
            (text_dir / f"{split}.{lang}").write_text("".join(s + "\n" for s in lines),
                                                      encoding="utf-8")
        counts[split] = len(rows)
    return counts


def train_spm(text_dir: Path, prefix: Path, vocab_size: int = 8000) -> None:
    """One joint unigram model on train de+en, every sentence and character (the protocol)."""
    import sentencepiece as spm

    prefix.parent.mkdir(parents=True, exist_ok=True)
    spm.SentencePieceTrainer.train(
        input=f"{text_dir / 'train.de'},{text_dir / 'train.en'}",
        model_prefix=str(prefix), model_type="unigram", vocab_size=vocab_size,
        character_coverage=1.0, input_sentence_size=0, minloglevel=2)
    vocab = Path(f"{prefix}.vocab").read_text(encoding="utf-8").splitlines()
    # JoeyNMT's voc_file: the pieces alone, one a line (it adds its own special tokens).
    Path(f"{prefix}.pieces.txt").write_text("".join(line.split("\t")[0] + "\n" for line in vocab),
                                            encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# Logs


ONMT_STEP = re.compile(r"Step\s+(\d+)(?:/\s*\d+)?;.*?([\d.]+)/\s*([\d.]+) tok/s;\s*(\d+) sec")
JOEY_STEP = re.compile(r"Step:\s*(\d+),.*?Tokens per Sec:\s*([\d.]+)")
PARAMETERS = re.compile(r"(?:number of parameters|Total params):\s*([\d,]+)")
SEQATTN_PARAMETERS = re.compile(r"([\d,]+) parameters")


def onmt_progress(log_text: str) -> list[tuple[int, float, float]]:
    """(step, target tokens/s, seconds since start) of each OpenNMT-py report line."""
    return [(int(m[1]), float(m[3]), float(m[4])) for m in ONMT_STEP.finditer(log_text)]


def onmt_steps(log_text: str, budget_s: float, startup_s: float = 15.0) -> int:
    """Steps for a run of `budget_s` seconds, at the rate between the probe's first and last report."""
    reports = onmt_progress(log_text)
    if len(reports) < 2:
        raise SystemExit("error: the OpenNMT-py probe logged fewer than 2 report lines: "
                         "lengthen it (--probe-seconds)")
    (step0, _, sec0), (step1, _, sec1) = reports[0], reports[-1]
    rate = (step1 - step0) / max(sec1 - sec0, 1.0)
    return max(1, int(rate * (budget_s - startup_s)))


def parse_time_v(path: Path) -> dict:
    """Wall seconds and peak RSS (GiB) from GNU `/usr/bin/time -v` output."""
    if not path.exists():
        return {}
    text = path.read_text(encoding="utf-8", errors="replace")
    result = {}
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\):\s*([\d:.]+)", text)
    if wall:
        seconds = 0.0
        for part in wall[1].split(":"):
            seconds = seconds * 60 + float(part)
        result["wall_s"] = seconds
    rss = re.search(r"Maximum resident set size \(kbytes\):\s*(\d+)", text)
    if rss:
        result["peak_rss_gib"] = int(rss[1]) / 1024**2
    return result


def training_stats(work: Path, toolkit: str) -> dict:
    """Steps, median target tokens/s and parameters, from each toolkit's own log."""
    logs = work / "logs"
    if toolkit == "seqattn":
        metrics = work / "runs" / "seqattn" / "metrics.jsonl"
        if not metrics.exists():
            return {}
        events = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
        train = [e for e in events if e.get("event") == "train"]
        stats = {"steps": max((e["step"] for e in events), default=None)}
        if train:
            stats["tokens_per_second"] = statistics.median(e["tokens_per_second"] for e in train)
        out = logs / "seqattn.train.out"
        params = SEQATTN_PARAMETERS.search(out.read_text(errors="replace")) if out.exists() else None
        if params:
            stats["parameters"] = int(params[1].replace(",", ""))
        return stats
    path = logs / f"{toolkit}.train.out"
    if not path.exists():
        return {}
    text = path.read_text(encoding="utf-8", errors="replace")
    stats = {}
    if toolkit == "opennmt":
        reports = onmt_progress(text)
        if reports:
            stats["steps"] = reports[-1][0]
            stats["tokens_per_second"] = statistics.median(r[1] for r in reports)
    else:
        reports = [(int(m[1]), float(m[2])) for m in JOEY_STEP.finditer(text)]
        if reports:
            stats["steps"] = reports[-1][0]
            stats["tokens_per_second"] = statistics.median(r[1] for r in reports)
    params = PARAMETERS.search(text)
    if params:
        stats["parameters"] = int(params[1].replace(",", ""))
    return stats


# ---------------------------------------------------------------------------------------------
# Scores and the table


def read_lines(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return text[:-1].split("\n") if text.endswith("\n") else text.split("\n")


def score(hyp_path: Path, ref_path: Path) -> dict:
    """sacreBLEU defaults (13a) on detokenised text; stray SentencePiece pieces are joined first."""
    from sacrebleu.metrics import BLEU, CHRF

    hyps, refs = read_lines(hyp_path), read_lines(ref_path)
    if len(hyps) != len(refs):
        return {"error": f"{len(hyps)} lines for {len(refs)} references"}
    if any("\u2581" in h for h in hyps):
        hyps = [normalise(h.replace(" ", "").replace("\u2581", " ")) for h in hyps]
    bleu, chrf = BLEU(), CHRF()
    return {"bleu": bleu.corpus_score(hyps, [refs]).score,
            "chrf": chrf.corpus_score(hyps, [refs]).score,
            "signature": str(bleu.get_signature())}


def collect(work: Path) -> dict[str, dict]:
    """Everything the table shows, per toolkit, from the files bench_peers.sh leaves in WORK."""
    results = {}
    for toolkit in TOOLKITS:
        if not any(next((work / folder).glob(f"{toolkit}.*"), None) for folder in ("logs", "hyp")):
            continue  # not run (bench_peers.sh --only ...)
        row = dict(training_stats(work, toolkit))
        train_time = parse_time_v(work / "logs" / f"{toolkit}.train.time")
        row["train_wall_s"] = train_time.get("wall_s")
        row["train_peak_rss_gib"] = train_time.get("peak_rss_gib")
        for beam in BEAMS:
            hyp = work / "hyp" / f"{toolkit}.beam{beam}.en"
            if hyp.exists():
                row[f"beam{beam}"] = score(hyp, work / "data" / "test.en")
            row[f"beam{beam}"] = row.get(f"beam{beam}", {})
            decode = parse_time_v(work / "logs" / f"{toolkit}.decode.beam{beam}.time")
            row[f"beam{beam}"]["decode_s"] = decode.get("wall_s")
        results[toolkit] = row
    return results


def _fmt(value, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def table(results: dict[str, dict]) -> str:
    names = list(results)
    if not names:
        return "no results yet: run the seqattn, joeynmt or opennmt steps first\n"
    rows = [
        ("training wall clock, s", lambda r: _fmt(r.get("train_wall_s"), 0)),
        ("peak RSS in training, GiB", lambda r: _fmt(r.get("train_peak_rss_gib"), 2)),
        ("steps", lambda r: _fmt(r.get("steps"))),
        ("target tokens/s (median of logged)", lambda r: _fmt(r.get("tokens_per_second"), 0)),
        ("parameters", lambda r: _fmt(r.get("parameters"))),
    ]
    for beam, label in ((1, "greedy"), (5, "beam 5")):
        rows += [
            (f"BLEU {label}", lambda r, b=beam: _fmt(r[f"beam{b}"].get("bleu"), 2)),
            (f"chrF {label}", lambda r, b=beam: _fmt(r[f"beam{b}"].get("chrf"), 2)),
            (f"decode {label}, whole command, s", lambda r, b=beam: _fmt(r[f"beam{b}"].get("decode_s"))),
        ]
    lines = ["| | " + " | ".join(names) + " |", "| --- |" + " ---: |" * len(names)]
    lines += [f"| {label} | " + " | ".join(get(results[n]) for n in names) + " |"
              for label, get in rows]
    errors = [f"- {n} beam {b}: {results[n][f'beam{b}']['error']}"
              for n in names for b in BEAMS if "error" in results[n][f"beam{b}"]]
    return "\n".join(lines + errors) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("to-text")
    p.add_argument("data_dir", type=Path)
    p.add_argument("text_dir", type=Path)
    p = commands.add_parser("spm")
    p.add_argument("text_dir", type=Path)
    p.add_argument("prefix", type=Path)
    p.add_argument("--vocab-size", type=int, default=8000)
    p = commands.add_parser("onmt-steps")
    p.add_argument("log", type=Path)
    p.add_argument("budget_s", type=float)
    p = commands.add_parser("table")
    p.add_argument("work", type=Path)
    args = parser.parse_args(argv)

    if args.command == "to-text":
        counts = to_text(args.data_dir, args.text_dir)
        print(" ".join(f"{split} {n}" for split, n in counts.items()), file=sys.stderr)
    elif args.command == "spm":
        train_spm(args.text_dir, args.prefix, args.vocab_size)
    elif args.command == "onmt-steps":
        print(onmt_steps(args.log.read_text(encoding="utf-8", errors="replace"), args.budget_s))
    else:
        results = collect(args.work)
        text = table(results)
        (args.work / "results.md").write_text(text, encoding="utf-8")
        (args.work / "results.json").write_text(json.dumps(results, indent=2) + "\n",
                                                 encoding="utf-8")
        print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
