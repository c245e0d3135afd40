"""Corpora larger than memory: build a big corpus from Multi30k, measure prepare and training.

    python scripts/bench_corpora.py make --pairs 2000000 --out /work/tmp/corpora/m30k-2m
    python scripts/bench_corpora.py prepare CONFIG --run-dir DIR [--set KEY=VALUE]...
    python scripts/bench_corpora.py train CONFIG --run-dir DIR [--set KEY=VALUE]...
    python scripts/bench_corpora.py batches CONFIG --run-dir DIR [--set KEY=VALUE]...
    python scripts/bench_corpora.py steps CONFIG --split LABEL=RUN_DIR=DATA_PATH... [--set ...]

`make` writes train.jsonl with `--pairs` lines, each two random Multi30k training pairs joined by a
space on both sides (about 30 pieces a side, twice Multi30k's; `--join 1`: one pair a line, at
Multi30k's own lengths), plus Multi30k's own validation and test files. `prepare` and `train` run
`python -m seqattn ...` in a child process, sample the resident memory of its whole process tree
every 50 ms (worker processes included: the sum, not the largest), and report wall and CPU time,
the peak, and the child's own figures. PYTHONPATH chooses the code measured (this tree, or a
baseline checkout). `batches` times make_batch on a prepared training split in this process (the
data path's share of a training step); `steps` times
training steps on several prepared splits taking turns in one process, with one model.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

MULTI30K = Path(__file__).resolve().parents[2] / "shared" / "data" / "multi30k"


def make_corpus(source: Path, out: Path, pairs: int, seed: int, join: int = 2) -> None:
    """`pairs` lines of `join` random source pairs joined, written without holding them all."""
    rows = [json.loads(line) for line in (source / "train.jsonl").open(encoding="utf-8")]
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "train.jsonl").open("w", encoding="utf-8") as handle:
        for _ in range(pairs):
            chosen = [rng.choice(rows) for _ in range(join)]
            joined = {lang: " ".join(row[lang] for row in chosen) for lang in chosen[0]}
            handle.write(json.dumps(joined, ensure_ascii=False) + "\n")
    shutil.copy(source / "val.jsonl", out / "validation.jsonl")
    shutil.copy(source / "test.jsonl", out / "test.jsonl")


def _kib(fields: dict[str, str], name: str) -> int:
    return int(fields[name].split()[0]) if name in fields else 0


def tree_rss_kib(root: int) -> tuple[int, int]:
    """Resident KiB of `root` and all its descendants (from /proc; Linux only): all of it, and
    the anonymous part alone (without the pages of memory-mapped files, which the kernel may
    drop at any time and which two processes mapping one file both count)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, tuple[int, int]] = {}
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
        rss[pid] = (_kib(fields, "VmRSS"), _kib(fields, "RssAnon"))
    total = anon = 0
    todo = [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, (0, 0))[0]
        anon += rss.get(pid, (0, 0))[1]
        todo += children.get(pid, [])
    return total, anon


def measure(command: list[str], log: Path) -> dict:
    """Run `command`, sampling its tree's RSS: its exit code, wall and CPU seconds (CPU time is
    the fairer figure on a shared machine), and the peak tree RSS."""
    started = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with log.open("w") as out:
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        peak = peak_anon = 0
        while child.poll() is None:
            total, anon = tree_rss_kib(child.pid)
            peak, peak_anon = max(peak, total), max(peak_anon, anon)
            time.sleep(0.05)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the child and every process it waited for
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {"command": " ".join(command), "rc": child.returncode,
            "seconds": round(time.perf_counter() - started, 1), "cpu_seconds": round(cpu, 1),
            "peak_tree_rss_mib": round(peak / 1024, 1),
            "peak_tree_anon_mib": round(peak_anon / 1024, 1)}


def batch_speed(config_path: str, run_dir: str, overrides: list[str], batches: int) -> dict:
    """Microseconds to build one training batch (make_batch) from the prepared training split,
    and from the same split copied into Python lists of arrays (how the baseline held it)."""
    import numpy as np

    from seqattn.config import load_config
    from seqattn.data import EncodedSplit, make_batch, train_batches
    from seqattn.prepare import prepare

    config = load_config(config_path, overrides)
    train = prepare(config, Path(run_dir), with_valid=False, say=lambda *_: None).train
    order = train_batches(train, config.train.batch_tokens, config.train.seed, 0)[:batches]
    copied = sorted({int(i) for b in order for i in b})
    position = {i: k for k, i in enumerate(copied)}
    lists = EncodedSplit([np.array(train.src[i]) for i in copied],
                         [np.array(train.tgt[i]) for i in copied], [], [])
    result = {"pairs": len(train), "batches": len(order)}
    for name, split, plan in (("store", train, order),
                              ("lists", lists, [[position[int(i)] for i in b] for b in order])):
        started = time.perf_counter()
        for indices in plan:
            make_batch(split, indices)
        result[f"{name}_us_per_batch"] = round((time.perf_counter() - started) / len(plan) * 1e6, 1)
    return result


def training_speed(metrics: Path, skip: int = 2) -> dict:
    """Median and best target tokens/s of the train log windows, the first `skip` left out
    (warm-up); on a shared machine the best window is the least disturbed one."""
    rows = [json.loads(line) for line in metrics.read_text().splitlines()] if metrics.exists() else []
    windows = [r["tokens_per_second"] for r in rows if r["event"] == "train"][skip:]
    if not windows:
        return {}
    speeds = sorted(windows)
    return {"tokens_per_second_median": speeds[len(speeds) // 2],
            "tokens_per_second_best": speeds[-1], "windows": len(speeds)}


def _lists_copy(split, plan: list) -> tuple[object, list]:
    """The sentences `plan` uses, copied into Python lists of arrays (the baseline's layout),
    and `plan` renumbered into the copy."""
    import numpy as np

    from seqattn.data import EncodedSplit

    used = sorted({int(i) for b in plan for i in b})
    position = {i: k for k, i in enumerate(used)}
    copy = EncodedSplit([np.array(split.src[i]) for i in used], [np.array(split.tgt[i]) for i in used],
                        [], [])
    return copy, [[position[int(i)] for i in b] for b in plan]


def step_speed(config_path: str, overrides: list[str], splits: list[str], steps: int,
               rounds: int) -> dict:
    """Target tokens/s of training steps (make_batch included) on each split, one model, the
    splits taking turns `steps` batches at a time for `rounds` rounds, so that a shared
    machine's load falls on all of them alike. The first split is also run from in-memory lists,
    on the very same batches.
    `splits`: LABEL=RUN_DIR=DATA_PATH, each prepared before."""
    import torch

    from seqattn.config import load_config
    from seqattn.data import make_batch, train_batches
    from seqattn.device import resolve_device, resolve_precision
    from seqattn.models import build_model
    from seqattn.optim import make_optimizer
    from seqattn.prepare import prepare
    from seqattn.training_step import train_step

    sources, vocab = {}, 0
    for text in splits:
        label, run_dir, data_path = text.split("=")
        config = load_config(config_path, overrides + [f"data.path={data_path}"])
        prepared = prepare(config, Path(run_dir), with_valid=False, say=lambda *_: None)
        vocab = max(vocab, prepared.tokenizer.src_vocab_size, prepared.tokenizer.tgt_vocab_size)
        plan = train_batches(prepared.train, config.train.batch_tokens, config.train.seed, 0)
        sources[label] = (prepared.train, plan[: steps * rounds + 10])
        if len(sources) == 1:
            sources[f"{label}, from lists"] = _lists_copy(*sources[label])
    torch.manual_seed(0)
    if config.train.num_threads:
        torch.set_num_threads(config.train.num_threads)
    device = resolve_device(config.train.device)
    model = build_model(config.model, vocab, vocab).to(device).train()
    optimizer = make_optimizer(model, config.train, device)
    precision = resolve_precision(config.train.precision, device)
    totals = {label: [0, 0.0] for label in sources}
    for round_number in range(-1, rounds):  # round -1: warm-up, not counted
        # Odd rounds go in reverse order: a split whose batches follow the same batches from
        # another split meets warm kernels for those shapes, so each goes first as often.
        order = list(sources.items())
        for label, (split, plan) in order[::-1] if round_number % 2 else order:
            part = plan[:10] if round_number < 0 else \
                plan[10 + round_number * steps : 10 + (round_number + 1) * steps]
            for indices in part:
                started = time.perf_counter()
                batch = make_batch(split, indices).to(device)
                train_step(model, optimizer, batch, config.train, precision, device, config.train.lr)
                if round_number >= 0:
                    totals[label][0] += batch.num_tgt_tokens
                    totals[label][1] += time.perf_counter() - started
    return {label: {"tgt_tokens_per_second": round(tokens / seconds, 1),
                    "mean_tgt_tokens_per_batch": round(tokens / (steps * rounds), 1)}
            for label, (tokens, seconds) in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    make = sub.add_parser("make")
    make.add_argument("--pairs", type=int, default=2_000_000)
    make.add_argument("--out", type=Path, required=True)
    make.add_argument("--source", type=Path, default=MULTI30K)
    make.add_argument("--seed", type=int, default=0)
    make.add_argument("--join", type=int, default=2, help="source pairs per line")
    for name in ("prepare", "train"):
        run = sub.add_parser(name)
        run.add_argument("config")
        run.add_argument("--run-dir", required=True)
        run.add_argument("--set", action="append", default=[])
        run.add_argument("--log", type=Path, default=None)
    speed = sub.add_parser("batches")
    speed.add_argument("config")
    speed.add_argument("--run-dir", required=True)
    speed.add_argument("--set", action="append", default=[])
    speed.add_argument("--batches", type=int, default=2000)
    steps = sub.add_parser("steps")
    steps.add_argument("config")
    steps.add_argument("--split", action="append", required=True, help="LABEL=RUN_DIR=DATA_PATH")
    steps.add_argument("--set", action="append", default=[])
    steps.add_argument("--steps", type=int, default=40)
    steps.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.what == "steps":
        print(json.dumps(step_speed(args.config, args.set, args.split, args.steps, args.rounds)))
        return
    if args.what == "make":
        make_corpus(args.source, args.out, args.pairs, args.seed, args.join)
        return
    if args.what == "batches":
        print(json.dumps(batch_speed(args.config, args.run_dir, args.set, args.batches)))
        return
    command = [sys.executable, "-m", "seqattn", args.what, args.config, "--run-dir", args.run_dir]
    command += [part for text in args.set for part in ("--set", text)]
    if args.what == "train":
        command.append("--overwrite")
    log = args.log or Path(args.run_dir + f".{args.what}.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    result = measure(command, log)
    result["log_tail"] = log.read_text(errors="replace").splitlines()[-3:]
    if args.what == "train":
        result.update(training_speed(Path(args.run_dir) / "metrics.jsonl"))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
