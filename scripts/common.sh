# shellcheck shell=bash disable=SC2034
# (SC2034: SCRIPTS_DIR and REPO_ROOT are set here for the scripts that source this file.)
# Sourced by the scripts in this folder (not run on its own): the Python to use and the
# greedy + beam-5 evaluation that every script does after training.

SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPTS_DIR/.." && pwd)"

# PYTHON: the caller's choice, else the project's .venv (run from the repo root), else python3.
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then
        PYTHON=.venv/bin/python
    elif [[ -x "$REPO_ROOT/.venv/bin/python" ]]; then
        PYTHON="$REPO_ROOT/.venv/bin/python"
    else
        PYTHON=python3
    fi
fi
export PYTHON

die() {
    echo "error: $*" >&2
    exit 2
}

seqattn() {
    "$PYTHON" -m seqattn "$@"
}

# The test split a run evaluates by default (data.test_split of its resolved config).
test_split() {
    local run_dir=$1
    "$PYTHON" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["data"]["test_split"])' \
        "$run_dir/config.yaml"
}

# evaluate writes eval/<split>.json for its last call only, so each beam's report and
# hypotheses are copied to eval/<split>[.TAG].beam<N>.json and eval/<split>[.TAG].beam<N>.hyp.txt.
# Usage: evaluate_greedy_and_beam RUN_DIR [CHECKPOINT TAG]  (default: best.pt, no tag)
evaluate_greedy_and_beam() {
    local run_dir=$1 checkpoint=${2:-} tag=${3:+.$3}
    local split beam
    local pick=()
    [[ -z $checkpoint ]] || pick=(--checkpoint "$checkpoint")
    split=$(test_split "$run_dir")
    for beam in 1 5; do
        echo "== evaluate $run_dir${checkpoint:+ ($checkpoint)} on $split, beam $beam" >&2
        seqattn evaluate "$run_dir" --split "$split" --beam "$beam" ${pick[@]+"${pick[@]}"} \
            --output "$run_dir/eval/$split$tag.beam$beam.hyp.txt"
        cp "$run_dir/eval/$split.json" "$run_dir/eval/$split$tag.beam$beam.json"
    done
}
