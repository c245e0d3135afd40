#!/usr/bin/env bash
# The prepared GPU check (issues 6, 15, 16): the RNN and the Transformer benchmark models in fp32
# and bf16 autocast (training tokens/s, FLOP/s against the measured matmul peak, decoding
# sentences/s, the Transformer's decode time by output length), DDP under torchrun (NCCL, one rank
# per GPU), and the Transformer's protocol recipe trained in bf16, then scored. About 7 minutes
# on one GPU with GPU_TRAIN_MINUTES=3.
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: scripts/gpu_check.sh DATA_PATH [OUT_DIR]

1. `seqattn bench` of configs/multi30k/protocol.yaml (RNN) and protocol_transformer.yaml on
   CUDA at batch_tokens 2048/8192/16384, precision fp32 and bf16, beams 1 and 5 on 1,000 dev
   sentences (the Transformer also at output lengths 16-128) -> OUT_DIR/gpu_bench.json,
   OUT_DIR/gpu_bench_transformer.json
2. `torchrun --standalone --nproc_per_node <GPUs> -m seqattn train` of the Transformer for 200
   updates (NCCL) -> OUT_DIR/ddp.log
3. the Transformer protocol recipe trained in bf16 for GPU_TRAIN_MINUTES (default 12), then
   `seqattn evaluate --beam 5` on the test split -> OUT_DIR/train_transformer.log, OUT_DIR/eval.log
OUT_DIR defaults to $OUT if set, else runs/gpu_check; the run directories go to
GPU_CHECK_RUNS (default OUT_DIR/runs). DATA_PATH is a Multi30k folder (train/val/test JSON
lines, e.g. a copy of ../shared/data/multi30k carried with the working tree).
Needs a CUDA build of torch and this package's requirements importable by $PYTHON (on the lent
machines, `datasets` and its `dill`/`multiprocess` come as carried wheels).
USAGE
}

[[ ${1:-} == -h || ${1:-} == --help ]] && { usage; exit 0; }
[[ $# -ge 1 && ${1:0:1} != - ]] || { usage >&2; echo "error: give DATA_PATH (no options)" >&2; exit 2; }
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
data_path=$1
out_dir=${2:-${OUT:-runs/gpu_check}}
runs=${GPU_CHECK_RUNS:-$out_dir/runs}
minutes=${GPU_TRAIN_MINUTES:-12}
rnn=configs/multi30k/protocol.yaml
transformer=configs/multi30k/protocol_transformer.yaml
mkdir -p "$out_dir" "$runs"
"$PYTHON" -c 'import torch; assert torch.cuda.is_available(), "no CUDA device"
print(torch.cuda.get_device_name(0), "x", torch.cuda.device_count(), "torch", torch.__version__)'
cuda=(--set "data.path=$data_path" --set train.device=cuda)

# A run directory that reuses the first bench's tokenizer and encoded cache (same data and
# tokenizer settings in both protocol configs).
fresh_run() {
    rm -rf "$runs/$1"
    mkdir -p "$runs/$1"
    cp -r "$runs/bench_rnn/tokenizer" "$runs/bench_rnn/cache" "$runs/$1/"
}

seqattn bench "$rnn" "${cuda[@]}" --run-dir "$runs/bench_rnn" --batch-tokens 2048,8192,16384 \
    --precision fp32,bf16 --beams 1,5 --steps 20 --warmup 5 --sentences 1000 \
    --output "$out_dir/gpu_bench.json"
fresh_run bench_transformer
seqattn bench "$transformer" "${cuda[@]}" --run-dir "$runs/bench_transformer" \
    --batch-tokens 2048,8192,16384 --precision fp32,bf16 --beams 1,5 --steps 20 --warmup 5 \
    --sentences 1000 --output-lengths 16,32,64,128 --output "$out_dir/gpu_bench_transformer.json"

# DDP over every GPU of the machine (NCCL), 200 updates.
gpus=$("$PYTHON" -c 'import torch; print(torch.cuda.device_count())')
fresh_run ddp
"$PYTHON" -m torch.distributed.run --standalone --nproc_per_node "$gpus" -m seqattn train \
    "$transformer" "${cuda[@]}" --set train.precision=bf16 --set train.max_steps=200 \
    --set train.max_minutes=null --set train.log_every=20 --run-dir "$runs/ddp" 2>&1 \
    | tee "$out_dir/ddp.log"

# The protocol recipe in bf16 autocast for the budget, then test BLEU at beam 5.
fresh_run train_transformer
seqattn train "$transformer" "${cuda[@]}" --set train.precision=bf16 \
    --set "train.max_minutes=$minutes" --run-dir "$runs/train_transformer" 2>&1 \
    | tee "$out_dir/train_transformer.log"
seqattn evaluate "$runs/train_transformer" --beam 5 2>&1 | tee "$out_dir/eval.log"
