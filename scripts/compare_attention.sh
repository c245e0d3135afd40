#!/usr/bin/env bash
# Train seq2seq, Bahdanau, Luong and the Transformer on Multi30k for the same time budget and
# compare them: no attention, additive, multiplicative, self-attention.
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: scripts/compare_attention.sh [DATA_PATH] [MINUTES] [--out DIR] [--set KEY=VALUE]... [--overwrite]

Train configs/multi30k/{seq2seq,bahdanau,luong,transformer_compare}.yaml one after another
(the same data, vocabulary, batch and optimiser; only the model differs), each for MINUTES
of training (train.max_minutes), evaluate each on the test split greedy and with beam 5,
then write the comparison with scripts/report.py:
  OUT/results.md          model, parameters, minutes, target tokens/s, BLEU/chrF greedy and beam 5
  OUT/bleu_by_length.csv  BLEU per source-length bucket, per model and beam
  OUT/bleu_by_length.png  the same, plotted (beam 5)
  OUT/curves.png          training loss, dev loss and dev BLEU of the four, by training minute
The runs themselves go to OUT/seq2seq, OUT/bahdanau, OUT/luong, OUT/transformer.

  DATA_PATH         data.path for all four, e.g. ../shared/data/multi30k (offline);
                    empty or - for each config's own (bentrevett/multi30k on the Hub)
  MINUTES           training minutes per model [default: 20]
  --out DIR         output folder [default: runs/compare]
  --set KEY=VALUE   extra override for all four trainings (repeatable)
  --overwrite       train again over runs already in OUT
  -h, --help        show this help

Environment: PYTHON (default .venv/bin/python if it exists, else python3).
Example: scripts/compare_attention.sh ../shared/data/multi30k 15
USAGE
}

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

out=runs/compare
data_path=""
minutes=20
positional=()
extra=()
while [[ $# -gt 0 ]]; do
    case $1 in
        -h | --help) usage; exit 0 ;;
        --out) [[ $# -ge 2 ]] || die "--out needs a folder"; out=$2; shift 2 ;;
        --out=*) out=${1#--out=}; shift ;;
        --set) [[ $# -ge 2 ]] || die "--set needs KEY=VALUE"; extra+=(--set "$2"); shift 2 ;;
        --set=*) extra+=(--set "${1#--set=}"); shift ;;
        --overwrite) extra+=(--overwrite); shift ;;
        -) positional+=(""); shift ;;
        -*) usage >&2; die "unknown option $1" ;;
        *) positional+=("$1"); shift ;;
    esac
done
[[ ${#positional[@]} -le 2 ]] || die "at most DATA_PATH and MINUTES, got: ${positional[*]}"
[[ ${#positional[@]} -ge 1 ]] && data_path=${positional[0]}
[[ ${#positional[@]} -ge 2 ]] && minutes=${positional[1]}
[[ $minutes =~ ^[0-9]+([.][0-9]+)?$ ]] || die "MINUTES must be a number, got '$minutes'"

overrides=(--set "train.max_minutes=$minutes")
[[ -n $data_path ]] && overrides+=(--set "data.path=$data_path")

models=(seq2seq bahdanau luong transformer)
run_dirs=()
for model in "${models[@]}"; do
    name=$model
    [[ $model == transformer ]] && name=transformer_compare  # transformer.yaml: the tuned recipe
    config="$REPO_ROOT/configs/multi30k/$name.yaml"
    [[ -f $config ]] || die "config not found ($config)"
    run_dir="$out/$model"
    echo "== train $model for $minutes minutes into $run_dir" >&2
    seqattn train "$config" --run-dir "$run_dir" "${overrides[@]}" ${extra[@]+"${extra[@]}"}
    evaluate_greedy_and_beam "$run_dir"
    run_dirs+=("$run_dir")
done

split=$(test_split "${run_dirs[0]}")
"$PYTHON" "$SCRIPTS_DIR/report.py" "${run_dirs[@]}" --out "$out" --split "$split"
seqattn plot "${run_dirs[@]}" --output "$out/curves.png" --x minutes >/dev/null
cat "$out/results.md"
