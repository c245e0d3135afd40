"""Compare trained runs: a Markdown results table and BLEU per source-length bucket (CSV + PNG).

Reads, for each RUN_DIR, `eval/<split>.beam1.json` and `eval/<split>.beam5.json` (written by
scripts/train.sh and scripts/compare_attention.sh) and `metrics.jsonl`. A run's label is its
folder name. Usage: python scripts/report.py RUN_DIR... [--out DIR] [--split NAME]
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

BEAMS = (1, 5)


@dataclass
class Run:
    label: str
    evals: dict[int, dict]  # beam -> eval JSON
    minutes: float | None  # training seconds (validation included) / 60, from metrics.jsonl
    tokens_per_second: float | None  # median over the logged train windows

    @property
    def parameters(self) -> int | None:
        for report in self.evals.values():
            if "parameters" in report:
                return report["parameters"]
        return None


def read_metrics(path: Path) -> tuple[float | None, float | None]:
    """(minutes trained, median target tokens/s of the train events) from metrics.jsonl."""
    if not path.exists():
        return None, None
    events = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    elapsed = [e["elapsed"] for e in events if "elapsed" in e]
    rates = [e["tokens_per_second"] for e in events
             if e.get("event") == "train" and e.get("tokens_per_second")]
    minutes = max(elapsed) / 60 if elapsed else None
    return minutes, (statistics.median(rates) if rates else None)


def read_run(run_dir: Path, split: str) -> Run:
    evals = {}
    for beam in BEAMS:
        path = run_dir / "eval" / f"{split}.beam{beam}.json"
        if path.exists():
            evals[beam] = json.loads(path.read_text(encoding="utf-8"))
    if not evals:
        raise SystemExit(f"error: no eval/{split}.beam1.json or .beam5.json ({run_dir}): "
                         f"run scripts/train.sh or evaluate with --beam 1 and --beam 5 first")
    minutes, rate = read_metrics(run_dir / "metrics.jsonl")
    return Run(run_dir.name, evals, minutes, rate)


def _number(value: float | int | None, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def _score(run: Run, beam: int, metric: str) -> str:
    report = run.evals.get(beam)
    return _number(report[metric]) if report is not None else "–"


def results_markdown(runs: list[Run], split: str) -> str:
    lines = [
        f"# Results on `{split}`",
        "",
        "| model | parameters | minutes | target tokens/s | BLEU greedy | chrF greedy | "
        "BLEU beam 5 | chrF beam 5 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for run in runs:
        lines.append(
            f"| {run.label} | {_number(run.parameters)} | {_number(run.minutes, 1)} | "
            f"{_number(run.tokens_per_second, 0)} | {_score(run, 1, 'bleu')} | "
            f"{_score(run, 1, 'chrf')} | {_score(run, 5, 'bleu')} | {_score(run, 5, 'chrf')} |")
    first = next(iter(runs[0].evals.values()))
    lines += [
        "",
        f"- data: `{first.get('dataset', '?')}` {first.get('pair', '')}, "
        f"{first.get('sentences', '?')} sentences; sacreBLEU "
        f"`{first.get('sacrebleu signatures', {}).get('bleu', '?')}`",
        "- minutes: training time including validations (the largest `elapsed` in metrics.jsonl)",
        "- target tokens/s: median of the train events' `tokens_per_second` (training steps only)",
        "",
    ]
    return "\n".join(lines)


def length_rows(runs: list[Run]) -> list[dict]:
    """One row per (model, beam, bucket) from each eval JSON's `bleu_by_source_length`."""
    rows = []
    for run in runs:
        for beam, report in sorted(run.evals.items()):
            for bucket in report.get("bleu_by_source_length", []):
                rows.append({"model": run.label, "beam": beam, "bucket": bucket["bucket"],
                             "sentences": bucket["sentences"], "bleu": bucket["bleu"]})
    return rows


def write_csv(rows: list[dict], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["model", "beam", "bucket", "sentences", "bleu"])
        writer.writeheader()
        writer.writerows(rows)


def plot_lengths(rows: list[dict], path: Path, split: str) -> None:
    """BLEU per source-length bucket, one line per model (beam 5 where there, else greedy)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    buckets = list(dict.fromkeys(r["bucket"] for r in rows))  # in the order evaluate wrote them
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        beam = max(r["beam"] for r in mine)
        by_bucket = {r["bucket"]: r["bleu"] for r in mine if r["beam"] == beam}
        xs = [i for i, b in enumerate(buckets) if b in by_bucket]
        ax.plot(xs, [by_bucket[buckets[i]] for i in xs], marker="o",
                label=f"{model} (beam {beam})")
    ax.set_xticks(range(len(buckets)), buckets)
    ax.set_xlabel("source sentence length (words)")
    ax.set_ylabel("BLEU")
    ax.set_title(f"BLEU by source length, {split}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR")
    parser.add_argument("--out", type=Path, default=Path("runs/compare"),
                        help="output folder [default: runs/compare]")
    parser.add_argument("--split", default="test", help="evaluated split [default: test]")
    args = parser.parse_args(argv)
    runs = [read_run(run_dir, args.split) for run_dir in args.run_dirs]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(results_markdown(runs, args.split), encoding="utf-8")
    rows = length_rows(runs)
    write_csv(rows, args.out / "bleu_by_length.csv")
    plot_lengths(rows, args.out / "bleu_by_length.png", args.split)
    print(f"wrote {args.out / 'results.md'}, bleu_by_length.csv, bleu_by_length.png", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
