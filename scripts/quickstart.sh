#!/usr/bin/env bash
# From a fresh clone to a trained Bahdanau model translating German: venv, install, train, use.
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: scripts/quickstart.sh [DATA_PATH] [MINUTES] [--set KEY=VALUE]... [--overwrite | --resume] [--no-install]

1. create .venv in the repo (or use it), install torch 2.13.0 (the CPU build on Linux) and
   then this package with `pip install -e '.[plot]'`;
2. train configs/multi30k/bahdanau_tuned.yaml into runs/quickstart for MINUTES minutes;
3. evaluate it on the test split, greedy and beam 5 (runs/quickstart/eval/);
4. translate a few German sentences, writing attention maps to runs/quickstart/attention/.

  DATA_PATH         Multi30k location: empty or - for the Hub (bentrevett/multi30k, needs
                    the network), or a local copy, e.g. ../shared/data/multi30k
  MINUTES           training minutes [default: 20]
  --set KEY=VALUE   extra config override (repeatable)
  --overwrite       train again over an existing runs/quickstart
  --resume          continue an interrupted runs/quickstart
  --no-install      skip the venv and pip steps; use PYTHON (or .venv) as it is
  -h, --help        show this help

A finished runs/quickstart is reused (no training) unless --overwrite is given.
Environment: PYTHON (skips creating .venv), TORCH_INDEX_URL (an index for torch, e.g.
https://download.pytorch.org/whl/cpu for the small CPU build on Linux; default: pip's own
configuration, which on the project's machines finds the CPU build on disk).
USAGE
}

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
data_path=""
minutes=20
install=1
positional=()
extra=()
while [[ $# -gt 0 ]]; do
    case $1 in
        -h | --help) usage; exit 0 ;;
        --set) [[ $# -ge 2 ]] || { echo "error: --set needs KEY=VALUE" >&2; exit 2; }
               extra+=(--set "$2"); shift 2 ;;
        --set=*) extra+=(--set "${1#--set=}"); shift ;;
        --overwrite | --resume) extra+=("$1"); shift ;;
        --no-install) install=0; shift ;;
        -) positional+=(""); shift ;;
        -*) usage >&2; echo "error: unknown option $1" >&2; exit 2 ;;
        *) positional+=("$1"); shift ;;
    esac
done
if [[ ${#positional[@]} -gt 2 ]]; then
    echo "error: at most DATA_PATH and MINUTES, got: ${positional[*]}" >&2
    exit 2
fi
[[ ${#positional[@]} -ge 1 ]] && data_path=${positional[0]}
[[ ${#positional[@]} -ge 2 ]] && minutes=${positional[1]}
if ! [[ $minutes =~ ^[0-9]+([.][0-9]+)?$ ]]; then
    echo "error: MINUTES must be a number, got '$minutes'" >&2
    exit 2
fi
# A local DATA_PATH is made absolute before we move to the repo root; a Hub id stays as it is.
if [[ -n $data_path && -e $data_path ]]; then
    data_path="$(cd "$data_path" && pwd)"
fi
cd "$repo_root"

if [[ $install -eq 1 && -z "${PYTHON:-}" ]]; then
    if [[ ! -x .venv/bin/python ]]; then
        echo "== create .venv" >&2
        python3 -m venv .venv
    fi
    PYTHON=.venv/bin/python
fi

# shellcheck source=scripts/common.sh
source scripts/common.sh

if [[ $install -eq 1 ]]; then
    "$PYTHON" -m pip install --quiet --upgrade pip
    have_torch=$("$PYTHON" -c 'import torch; print(torch.__version__)' 2>/dev/null || true)
    if [[ $have_torch != 2.13.0* ]]; then
        # torch first: a plain `torch` requirement on Linux pulls the multi-GB CUDA build.
        echo "== install torch 2.13.0" >&2
        torch_index=()
        if [[ $(uname -s) == Linux ]]; then
            index=${TORCH_INDEX_URL-}
            [[ -n $index ]] && torch_index=(--index-url "$index")
        fi
        "$PYTHON" -m pip install ${torch_index[@]+"${torch_index[@]}"} torch==2.13.0
    fi
    echo "== install seqattn (pip install -e '.[plot]')" >&2
    "$PYTHON" -m pip install --quiet -e '.[plot]'
fi

run_dir=runs/quickstart
overrides=(--set "train.max_minutes=$minutes")
[[ -n $data_path ]] && overrides+=(--set "data.path=$data_path")
if [[ -f $run_dir/checkpoints/best.pt && " ${extra[*]-} " != *" --overwrite "* \
      && " ${extra[*]-} " != *" --resume "* ]]; then
    echo "== $run_dir is trained already: using it (pass --overwrite to train again)" >&2
else
    echo "== train configs/multi30k/bahdanau_tuned.yaml for $minutes minutes into $run_dir" >&2
    seqattn train configs/multi30k/bahdanau_tuned.yaml --run-dir "$run_dir" "${overrides[@]}" \
        ${extra[@]+"${extra[@]}"}
fi
evaluate_greedy_and_beam "$run_dir"

cat > "$run_dir/examples.de" <<'GERMAN'
Ein Mann fährt mit dem Fahrrad eine Straße entlang.
Zwei Kinder spielen im Sand am Strand.
Eine Frau in einem roten Kleid hält einen Regenschirm.
Ein Hund rennt über eine grüne Wiese.
GERMAN
echo "== translate $run_dir/examples.de (beam 5)" >&2
seqattn translate "$run_dir" "$run_dir/examples.de" --beam 5 --output "$run_dir/examples.en" \
    --attention "$run_dir/attention"
paste -d '\n' "$run_dir/examples.de" "$run_dir/examples.en" /dev/null
echo "attention maps (JSON + PNG per sentence): $run_dir/attention/" >&2
