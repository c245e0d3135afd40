#!/usr/bin/env bash
# The prepared GPU check of issue 6: protocol model, fp32 and bf16 autocast, training tokens/s,
# FLOP/s against the measured matmul peak, decoding sentences/s; then 200 DDP updates under torchrun
# (NCCL), one rank per GPU (issue 16). About 6 minutes on one GPU.
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: scripts/gpu_check.sh DATA_PATH [OUT_DIR]

Runs `seqattn bench configs/multi30k/protocol.yaml` on CUDA at batch_tokens 2048/8192/16384,
precision fp32 and bf16, beams 1 and 5 on 1,000 dev sentences, and writes OUT_DIR/gpu_bench.json
(default: $OUT if set, else runs/gpu_check); then `torchrun --standalone --nproc_per_node <GPUs>
-m seqattn train` for 200 updates (NCCL), log in OUT_DIR/ddp.log, metrics in OUT_DIR/ddp/.
DATA_PATH is a Multi30k folder (train/val/test
JSON lines, e.g. a copy of ../shared/data/multi30k carried with the working tree).
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
mkdir -p "$out_dir"
"$PYTHON" -c 'import torch; assert torch.cuda.is_available(), "no CUDA device"; print(torch.cuda.get_device_name(0))'
seqattn bench configs/multi30k/protocol.yaml --set "data.path=$data_path" --set train.device=cuda \
    --run-dir "$out_dir/run" --batch-tokens 2048,8192,16384 --precision fp32,bf16 --beams 1,5 \
    --steps 20 --warmup 5 --sentences 1000 --output "$out_dir/gpu_bench.json"
# DDP over every GPU of the card (NCCL), 200 updates; the bench's tokenizer and cache are reused.
gpus=$("$PYTHON" -c 'import torch; print(torch.cuda.device_count())')
rm -rf "$out_dir/ddp"
mkdir -p "$out_dir/ddp"
cp -r "$out_dir/run/tokenizer" "$out_dir/run/cache" "$out_dir/ddp/"
"$PYTHON" -m torch.distributed.run --standalone --nproc_per_node "$gpus" -m seqattn train \
    configs/multi30k/protocol.yaml --set "data.path=$data_path" --set train.device=cuda \
    --set train.max_steps=200 --set train.max_minutes=null --set train.log_every=20 \
    --set train.valid_every=100000 --set data.valid_max_examples=200 \
    --run-dir "$out_dir/ddp" 2>&1 | tee "$out_dir/ddp.log"
