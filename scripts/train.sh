#!/usr/bin/env bash
# Train one config, then score the test split greedy and with beam 5.
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: scripts/train.sh CONFIG [--set KEY=VALUE]... [--run-dir DIR] [--average N]
                        [--resume | --overwrite]

Train CONFIG with `seqattn train`, then evaluate the run's test split twice:
greedy (--beam 1) and beam 5. Each evaluation is kept as
  RUN_DIR/eval/<split>.beam1.json, <split>.beam1.hyp.txt
  RUN_DIR/eval/<split>.beam5.json, <split>.beam5.hyp.txt
(RUN_DIR/eval/<split>.json is the last evaluation's).

  CONFIG            YAML config, e.g. configs/multi30k/bahdanau.yaml
  --set KEY=VALUE   override a config key (repeatable), e.g. --set train.max_minutes=10
  --run-dir DIR     run directory [default: runs/<config file stem>]
  --average N       also keep the last N saves (train.keep_last=N), average them
                    (seqattn average) and evaluate the mean the same two ways:
                    RUN_DIR/eval/<split>.avgN.beam1.json, <split>.avgN.beam5.json, ...
  --resume          continue the run in RUN_DIR
  --overwrite       start RUN_DIR again
  -h, --help        show this help

Environment: PYTHON (default .venv/bin/python if it exists, else python3).
Example: scripts/train.sh configs/multi30k/bahdanau.yaml --set data.path=../shared/data/multi30k
USAGE
}

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

config=""
run_dir=""
average=""
train_args=()
while [[ $# -gt 0 ]]; do
    case $1 in
        -h | --help) usage; exit 0 ;;
        --set) [[ $# -ge 2 ]] || die "--set needs KEY=VALUE"; train_args+=(--set "$2"); shift 2 ;;
        --set=*) train_args+=(--set "${1#--set=}"); shift ;;
        --run-dir) [[ $# -ge 2 ]] || die "--run-dir needs a folder"; run_dir=$2; shift 2 ;;
        --run-dir=*) run_dir=${1#--run-dir=}; shift ;;
        --average) [[ $# -ge 2 ]] || die "--average needs a number"; average=$2; shift 2 ;;
        --average=*) average=${1#--average=}; shift ;;
        --resume | --overwrite) train_args+=("$1"); shift ;;
        -*) usage >&2; die "unknown option $1" ;;
        *) [[ -z $config ]] || die "one CONFIG only, got '$config' and '$1'"; config=$1; shift ;;
    esac
done
[[ -n $config ]] || { usage >&2; exit 2; }
if [[ -n $average ]]; then
    [[ $average =~ ^[0-9]+$ && $average -ge 2 ]] || die "--average needs a number of at least 2, got '$average'"
    train_args=(--set "train.keep_last=$average" ${train_args[@]+"${train_args[@]}"})
fi

if [[ -z $run_dir ]]; then
    stem=$(basename "$config")
    run_dir="runs/${stem%.*}"  # seqattn's own default: runs/<config file stem>
fi

seqattn train "$config" --run-dir "$run_dir" ${train_args[@]+"${train_args[@]}"}
evaluate_greedy_and_beam "$run_dir"
if [[ -n $average ]]; then
    seqattn average "$run_dir" --last "$average" --output "averaged$average.pt" >/dev/null
    evaluate_greedy_and_beam "$run_dir" "averaged$average.pt" "avg$average"
fi
echo "done: $run_dir/eval/" >&2
