"""Corpora larger than memory: build a big corpus from Multi30k, measure prepare and training.

    python scripts/bench_corpora.py make --pairs 2000000 --out /work/tmp/corpora/m30k-2m
    python scripts/bench_corpora.py prepare CONFIG --run-dir DIR [--set KEY=VALUE]...
    python scripts/bench_corpora.py train CONFIG --run-dir DIR [--set KEY=VALUE]...

`make` writes train.jsonl with `--pairs` lines, each two random Multi30k training pairs joined by a
space on both sides (about 30 pieces a side, twice Multi30k's), plus Multi30k's own validation and
test files. `prepare` and `train` run `python -m seqattn ...` in a child process and sample the
resident memory of its whole process tree every 50 ms (worker processes included: the sum, not
the largest), and report wall time, the peak, and the child's own figures. PYTHONPATH chooses the
code measured (this tree, or a baseline checkout).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

MULTI30K = Path(__file__).resolve().parents[2] / "shared" / "data" / "multi30k"


def make_corpus(source: Path, out: Path, pairs: int, seed: int) -> None:
    """`pairs` lines of two random source pairs joined, written without holding them all."""
    rows = [json.loads(line) for line in (source / "train.jsonl").open(encoding="utf-8")]
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "train.jsonl").open("w", encoding="utf-8") as handle:
        for _ in range(pairs):
            a, b = rng.choice(rows), rng.choice(rows)
            joined = {lang: f"{a[lang]} {b[lang]}" for lang in a}
            handle.write(json.dumps(joined, ensure_ascii=False) + "\n")
    shutil.copy(source / "val.jsonl", out / "validation.jsonl")
    shutil.copy(source / "test.jsonl", out / "test.jsonl")


def tree_rss_kib(root: int) -> int:
    """Resident KiB of `root` and all its descendants (from /proc; Linux only)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        pid = int(entry)
        children.setdefault(int(fields.get("PPid", "0").strip()), []).append(pid)
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0]) if "VmRSS" in fields else 0
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += children.get(pid, [])
    return total


def measure(command: list[str], log: Path) -> dict:
    """Run `command`, sampling its tree's RSS; wall seconds, peak tree RSS and its exit code."""
    started = time.perf_counter()
    with log.open("w") as out:
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        peak = 0
        while child.poll() is None:
            peak = max(peak, tree_rss_kib(child.pid))
            time.sleep(0.05)
    return {"command": " ".join(command), "rc": child.returncode,
            "seconds": round(time.perf_counter() - started, 1),
            "peak_tree_rss_mib": round(peak / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    make = sub.add_parser("make")
    make.add_argument("--pairs", type=int, default=2_000_000)
    make.add_argument("--out", type=Path, required=True)
    make.add_argument("--source", type=Path, default=MULTI30K)
    make.add_argument("--seed", type=int, default=0)
    for name in ("prepare", "train"):
        run = sub.add_parser(name)
        run.add_argument("config")
        run.add_argument("--run-dir", required=True)
        run.add_argument("--set", action="append", default=[])
        run.add_argument("--log", type=Path, default=None)
    args = parser.parse_args()
    if args.what == "make":
        make_corpus(args.source, args.out, args.pairs, args.seed)
        return
    command = [sys.executable, "-m", "seqattn", args.what, args.config, "--run-dir", args.run_dir]
    command += [part for text in args.set for part in ("--set", text)]
    if args.what == "train":
        command.append("--overwrite")
    log = args.log or Path(args.run_dir + f".{args.what}.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    result = measure(command, log)
    result["log_tail"] = log.read_text(errors="replace").splitlines()[-3:]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
