#!/usr/bin/env bash
# Data-parallel training on one small machine: 2 ranks x 1 thread (torchrun, gloo) against
# 1 process x 2 threads, and two "machines" simulated on localhost (--nnodes 2, two launches).
# Every run makes the same updates: the 1-process run accumulates 2 batches per update
# (train.accumulate=2), as the 2 ranks take 1 batch each. Figures: docs/distributed.md.
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: scripts/bench_ddp.sh DATA_PATH [OUT_DIR] [STEPS] [BATCH_TOKENS]

Trains configs/multi30k/bahdanau_tuned.yaml for STEPS updates (default 60) of 2 batches of
BATCH_TOKENS (default the config's 3500) four ways:
  single2  seqattn train, 1 process, train.num_threads=2, train.accumulate=2
  single1  the same on 1 thread (the per-core baseline)
  ranks    torchrun --standalone --nproc_per_node 2, train.num_threads=1 per rank
  nodes    torchrun --nnodes 2 --node-rank 0|1 --rdzv-endpoint 127.0.0.1:PORT, 1 rank each
and prints target tokens/s, the loss every 5 updates and the host's fp32 matmul peak
(GFLOP/s at 1 and 2 threads). DATA_PATH: a Multi30k folder (e.g. ../shared/data/multi30k).
OUT_DIR defaults to runs/bench_ddp; it is started afresh.
USAGE
}

[[ ${1:-} == -h || ${1:-} == --help ]] && { usage; exit 0; }
[[ $# -ge 1 && ${1:0:1} != - ]] || { usage >&2; echo "error: give DATA_PATH (no options)" >&2; exit 2; }
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
data_path=$1
out_dir=${2:-runs/bench_ddp}
steps=${3:-60}
batch_tokens=${4:-3500}
[[ $steps =~ ^[1-9][0-9]*$ ]] || die "STEPS must be a positive integer, got '$steps'"
[[ $batch_tokens =~ ^[1-9][0-9]*$ ]] || die "BATCH_TOKENS must be a positive integer, got '$batch_tokens'"
config=configs/multi30k/bahdanau_tuned.yaml
# The tuned recipe runs to a 20-minute limit; here the step count binds (the linear decay
# follows it), validation waits for the end and uses 200 dev sentences.
common=(--set "data.path=$data_path" --set train.max_minutes=null --set "train.max_steps=$steps"
        --set train.log_every=5 --set train.valid_every=100000 --set train.save_every=100000
        --set data.valid_max_examples=200 --set train.device=cpu --set train.precision=fp32
        --set "train.batch_tokens=$batch_tokens")
torchrun=("$PYTHON" -m torch.distributed.run)
rm -rf "$out_dir"
mkdir -p "$out_dir"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

# One SentencePiece model and encoded cache for all runs: prepare reuses them when they match.
seqattn prepare "$config" "${common[@]}" --run-dir "$out_dir/prepared" >/dev/null
fresh() { cp -r "$out_dir/prepared" "$out_dir/$1"; }

for threads in 2 1; do
    echo "== 1 process x $threads thread(s), accumulate 2" >&2
    fresh "single$threads"
    OMP_NUM_THREADS=$threads seqattn train "$config" "${common[@]}" --set "train.num_threads=$threads" \
        --set train.accumulate=2 --run-dir "$out_dir/single$threads" 2>"$out_dir/single$threads.log"
done

echo "== torchrun: 2 ranks x 1 thread" >&2
fresh ranks
OMP_NUM_THREADS=1 "${torchrun[@]}" --standalone --nproc_per_node 2 -m seqattn train "$config" \
    "${common[@]}" --set train.num_threads=1 --run-dir "$out_dir/ranks" >"$out_dir/ranks.log" 2>&1

echo "== torchrun: 2 nodes on localhost, 1 rank each" >&2
fresh nodes
port=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
node() {
    OMP_NUM_THREADS=1 "${torchrun[@]}" --nnodes 2 --node-rank "$1" --nproc_per_node 1 \
        --rdzv-endpoint "127.0.0.1:$port" -m seqattn train "$config" "${common[@]}" \
        --set train.num_threads=1 --run-dir "$out_dir/nodes" >"$out_dir/nodes.$1.log" 2>&1
}
node 1 &
other=$!
node 0
wait "$other"

echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
"$PYTHON" - "$out_dir" <<'PY'
import json
import sys
from pathlib import Path

import torch

from seqattn.bench import matmul_peak

out = Path(sys.argv[1])
peaks = {}
for threads in (1, 2):
    torch.set_num_threads(threads)
    peaks[threads] = round(matmul_peak(torch.float32, torch.device("cpu")), 1)
print(f"host fp32 matmul peak: {peaks[1]} GFLOP/s on 1 thread, {peaks[2]} GFLOP/s on 2 threads")
rows = {}
for name in ("single2", "single1", "ranks", "nodes"):
    events = [json.loads(line) for line in (out / name / "metrics.jsonl").read_text().splitlines()]
    train = [e for e in events if e["event"] == "train"]
    valid = [e for e in events if e["event"] == "valid"]
    # tokens/s over the whole run: all target tokens over the training seconds (no validation)
    rows[name] = {"tokens_per_second": round(train[-1]["tgt_tokens"] / train[-1]["elapsed"], 1),
                  "seconds": train[-1]["elapsed"], "tgt_tokens": train[-1]["tgt_tokens"],
                  "loss": {e["step"]: e["loss"] for e in train},
                  "dev_loss": valid[-1]["loss"] if valid else None}
steps = sorted(rows["single2"]["loss"])
print("| run | tgt tokens/s | train s | dev loss | " + " | ".join(f"loss@{s}" for s in steps) + " |")
print("| --- | ---: | ---: | ---: |" + " ---: |" * len(steps))
for name, row in rows.items():
    print(f"| {name} | {row['tokens_per_second']} | {row['seconds']:.1f} | {row['dev_loss']} | "
          + " | ".join(str(row["loss"].get(s)) for s in steps) + " |")
(out / "bench_ddp.json").write_text(json.dumps({"peak_gflops_fp32": peaks, "runs": rows}, indent=2))
PY
