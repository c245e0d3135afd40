#!/usr/bin/env bash
# seqattn against JoeyNMT 2.2.1 and OpenNMT-py 3.5.1 on the protocol of shared/bench/PROTOCOL.md.
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: scripts/bench_peers.sh [--model rnn-attn|transformer] [--work DIR] [--data DIR]
                              [--budget MINUTES] [--only STEPS] [--peers DIR]
                              [--probe-seconds S] [--onmt-steps N]

The benchmark of shared/bench/PROTOCOL.md, one toolkit after another (never two at once):
  data     Multi30k JSON lines -> WORK/data/{train,validation,test}.{de,en} (plain text);
           the joint SentencePiece unigram 8k model WORK/spm/spm_joint8k.model;
           the peers' configs from PEERS/*.yaml with WORK filled in -> WORK/configs/
  install  JoeyNMT 2.2.1 and OpenNMT-py 3.5.1, each with torch 2.13.0 in its own venv
           (WORK/venv-joeynmt, WORK/venv-opennmt; never the project's .venv)
  seqattn  configs/multi30k/protocol.yaml (transformer: protocol_transformer.yaml) for the budget
  joeynmt  JoeyNMT for the budget (stopped with SIGINT; it saves a checkpoint)
  opennmt  OpenNMT-py: a short probe measures its step rate, then train_steps is set so
           that the run ends near the budget
  decode   decode again with all three, one after another, on the models trained before
           (a side-by-side decoding comparison without retraining)
  table    score the test outputs (sacreBLEU defaults) and print the side-by-side table
           (also WORK/results.md and WORK/results.json)
Each toolkit trains under /usr/bin/time -v (wall clock, peak RSS) and then translates
the test set greedy and with beam 5 (whole command timed); seqattn also with its fast path
(seqattn-fast: --set search.shortlist=500 --set search.precision=int8) and OpenNMT-py also
at batch 64 (opennmt-b64: the batch size of seqattn and JoeyNMT; its default is 30).
Takes about 45 minutes with the default budget: run it on an otherwise idle machine.
With --model transformer (PROTOCOL.md's second model: 2+2 layers, d 256) seqattn and
OpenNMT-py run it (the protocol has no JoeyNMT config for it), and the logs, outputs, runs and
table go to WORK/transformer/ (data, subwords and venvs are shared with rnn-attn).

  --model NAME        the protocol model: rnn-attn or transformer [default: rnn-attn]
  --work DIR          work folder [default: bench_out]
  --data DIR          Multi30k JSON-lines folder [default: ../shared/data/multi30k]
  --budget MINUTES    training wall clock per toolkit [default: 12]
  --only STEPS        comma-separated subset of: data,install,seqattn,joeynmt,opennmt,
                      decode,table [default: all but decode, in that order; transformer:
                      all but decode and joeynmt]
  --peers DIR         the peers' configs [default: ../shared/bench/peers]
  --probe-seconds S   length of the OpenNMT-py rate probe [default: 110]
  --onmt-steps N      skip the probe: train OpenNMT-py for N steps
  -h, --help          show this help

Environment: PYTHON (seqattn's; default .venv/bin/python if it exists, else python3),
BENCH_PYTHON (makes the peers' venvs; default python3), TORCH_INDEX_URL (an index for
torch, e.g. https://download.pytorch.org/whl/cpu; default: pip's own configuration).
USAGE
}

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

work=bench_out
data=../shared/data/multi30k
budget=12
only=""
model=rnn-attn
fast_shortlist=500
peers=../shared/bench/peers
probe_seconds=110
onmt_steps=""
while [[ $# -gt 0 ]]; do
    [[ $1 == -h || $1 == --help ]] && { usage; exit 0; }
    [[ $1 == -* ]] || { usage >&2; die "unexpected argument '$1'"; }
    [[ $# -ge 2 ]] || die "$1 needs a value"
    case $1 in
        --model) model=$2 ;;
        --work) work=$2 ;;
        --data) data=$2 ;;
        --budget) budget=$2 ;;
        --only) only=$2 ;;
        --peers) peers=$2 ;;
        --probe-seconds) probe_seconds=$2 ;;
        --onmt-steps) onmt_steps=$2 ;;
        *) usage >&2; die "unknown option $1" ;;
    esac
    shift 2
done
case $model in
    rnn-attn) seqattn_config=protocol.yaml onmt_name=rnn_attn
              only=${only:-data,install,seqattn,joeynmt,opennmt,table} ;;
    transformer) seqattn_config=protocol_transformer.yaml onmt_name=transformer
                 only=${only:-data,install,seqattn,opennmt,table} ;;
    *) die "--model must be rnn-attn or transformer, got '$model'" ;;
esac
[[ $budget =~ ^[0-9]+([.][0-9]+)?$ ]] || die "--budget must be minutes, got '$budget'"
[[ $probe_seconds =~ ^[0-9]+$ ]] || die "--probe-seconds must be whole seconds, got '$probe_seconds'"
[[ -z $onmt_steps || $onmt_steps =~ ^[0-9]+$ ]] || die "--onmt-steps must be a number, got '$onmt_steps'"
IFS=, read -r -a steps <<< "$only"
for step in "${steps[@]}"; do
    [[ $step =~ ^(data|install|seqattn|joeynmt|opennmt|decode|table)$ ]] || die "unknown step '$step' in --only"
done
want() { [[ ",$only," == *",$1,"* ]]; }
if [[ $model == transformer ]] && { want joeynmt || want decode; }; then
    die "--model transformer has no JoeyNMT run (no peer config in the protocol): leave joeynmt and decode out of --only"
fi

if want seqattn || want joeynmt || want opennmt; then
    [[ -x /usr/bin/time ]] || die "GNU time is missing (/usr/bin/time): apt-get install time"
    command -v timeout > /dev/null || die "timeout (GNU coreutils) is missing"
fi

mkdir -p "$work"
work="$(cd "$work" && pwd)"  # absolute: it is written into the peers' configs
budget_s=$(awk -v m="$budget" 'BEGIN { printf "%d", m * 60 }')
spm_model="$work/spm/spm_joint8k.model"
bench=("$PYTHON" "$SCRIPTS_DIR/bench.py")
mkdir -p "$work"/{configs,logs,hyp,models,runs}
# out: where this model's logs, outputs, seqattn run and table go (data/ is shared)
out=$work
if [[ $model == transformer ]]; then
    out=$work/transformer
    mkdir -p "$out"/{logs,hyp,runs}
    ln -sfn ../data "$out/data"
fi

# timed OUTFILE COMMAND...: run COMMAND under GNU time -v, its report in OUTFILE.
timed() {
    local out=$1
    shift
    /usr/bin/time -v -o "$out" "$@"
}

# Exit statuses that mean "ran, then stopped by the budget": 0, and timeout's 124.
check_stopped() {
    local rc=$1 what=$2
    [[ $rc -eq 0 || $rc -eq 124 ]] || die "$what failed (exit $rc); see $out/logs/"
}

# The test set, greedy and beam 5, each whole command under GNU time. Besides each toolkit's
# default: seqattn-fast (lexical shortlist + int8 weights, seqattn's fast path) and
# opennmt-b64 (OpenNMT-py at seqattn's and JoeyNMT's batch size of 64 sentences; its own
# default is 30).
decode_seqattn() {
    local run_dir="$out/runs/seqattn" beam
    for beam in 1 5; do
        echo "== seqattn: translate test, beam $beam" >&2
        timed "$out/logs/seqattn.decode.beam$beam.time" "$PYTHON" -m seqattn translate "$run_dir" \
            "$work/data/test.de" --beam "$beam" --output "$out/hyp/seqattn.beam$beam.en" \
            2>> "$out/logs/seqattn.decode.out"
        echo "== seqattn-fast (shortlist $fast_shortlist + int8): translate test, beam $beam" >&2
        timed "$out/logs/seqattn-fast.decode.beam$beam.time" "$PYTHON" -m seqattn translate \
            "$run_dir" "$work/data/test.de" --beam "$beam" \
            --set "search.shortlist=$fast_shortlist" --set search.precision=int8 \
            --output "$out/hyp/seqattn-fast.beam$beam.en" 2>> "$out/logs/seqattn-fast.decode.out"
    done
}

decode_joeynmt() {
    local joey="$work/venv-joeynmt/bin/python" model_dir="$work/models/joey_rnn_attn"
    local checkpoint="$model_dir/latest.ckpt" beam config
    if [[ ! -e $checkpoint ]]; then
        checkpoint=$(find "$model_dir" -name '*.ckpt' -printf '%T@ %p\n' | sort -n | tail -1 | cut -d' ' -f2-)
    fi
    [[ -n $checkpoint && -e $checkpoint ]] || die "JoeyNMT left no checkpoint in $model_dir"
    for beam in 1 5; do
        echo "== JoeyNMT: translate test, beam $beam" >&2
        config="$work/configs/joeynmt_rnn_attn.yaml"
        [[ $beam -eq 5 ]] && config="$work/configs/joeynmt_rnn_attn.beam5.yaml"
        timed "$out/logs/joeynmt.decode.beam$beam.time" "$joey" -m joeynmt translate "$config" \
            --ckpt "$checkpoint" < "$work/data/test.de" > "$out/hyp/joeynmt.beam$beam.en" \
            2>> "$out/logs/joeynmt.decode.out"
    done
}

decode_opennmt() {
    local onmt="$work/venv-opennmt/bin" checkpoint beam name batch
    checkpoint=$(find "$work/models/onmt_$onmt_name" -name 'model_step_*.pt' | sort -V | tail -1)
    [[ -n $checkpoint ]] || die "OpenNMT-py left no checkpoint in $work/models/onmt_$onmt_name"
    for beam in 1 5; do
        for name in opennmt opennmt-b64; do
            batch=30  # onmt_translate's default
            [[ $name == opennmt-b64 ]] && batch=64
            echo "== $name: translate test, beam $beam, batch $batch" >&2
            # 3.5.1 checkpoints hold more than tensors: torch >= 2.6 loads them only with this.
            timed "$out/logs/$name.decode.beam$beam.time" env TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 \
                "$onmt/onmt_translate" -model "$checkpoint" -src "$work/data/test.de" \
                -output "$out/hyp/$name.beam$beam.en" -beam_size "$beam" -batch_size "$batch" \
                -transforms sentencepiece -src_subword_model "$spm_model" \
                -tgt_subword_model "$spm_model" >> "$out/logs/$name.decode.out" 2>&1
        done
    done
}

if want data; then
    echo "== data: $data -> $work/data, SentencePiece -> $work/spm" >&2
    [[ -d $data ]] || die "data folder not found ($data): pass --data"
    [[ -d $peers ]] || die "peers' configs not found ($peers): pass --peers"
    "${bench[@]}" to-text "$data" "$work/data"
    "${bench[@]}" spm "$work/data" "${spm_model%.model}"
    for config in "$peers"/*.yaml; do
        sed "s|WORK|$work|g" "$config" > "$work/configs/$(basename "$config")"
    done
    # The beam-5 decode config of JoeyNMT differs from the training one in beam_size only.
    sed -E 's/^( *beam_size:) 1( .*)?$/\1 5  # the beam-5 decode (bench_peers.sh)/' \
        "$work/configs/joeynmt_rnn_attn.yaml" \
        > "$work/configs/joeynmt_rnn_attn.beam5.yaml"
    grep -q 'beam_size: 5' "$work/configs/joeynmt_rnn_attn.beam5.yaml" \
        || die "could not set beam_size 5 in the JoeyNMT config"
fi

# make_venv DIR: a venv holding torch 2.13.0 (the CPU build on Linux).
make_venv() {
    local venv=$1
    local index=()
    [[ -x $venv/bin/python ]] || "${BENCH_PYTHON:-python3}" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    if [[ $(uname -s) == Linux && -n ${TORCH_INDEX_URL-} ]]; then
        index=(--index-url "${TORCH_INDEX_URL-}")
    fi
    "$venv/bin/python" -m pip install --quiet ${index[@]+"${index[@]}"} torch==2.13.0
}

if want install && [[ $model == rnn-attn ]]; then
    echo "== install JoeyNMT 2.2.1 into $work/venv-joeynmt" >&2
    make_venv "$work/venv-joeynmt"
    # JoeyNMT 2.2.1 imports pkg_resources (setuptools < 81) and calls a method that
    # sentencepiece 0.2.3 lacks.
    "$work/venv-joeynmt/bin/python" -m pip install --quiet joeynmt==2.2.1 'setuptools<81' \
        'sentencepiece==0.2.0'
fi
if want install; then
    echo "== install OpenNMT-py 3.5.1 into $work/venv-opennmt" >&2
    make_venv "$work/venv-opennmt"
    # 3.5.1 pins torch < 2.3: install it without dependencies, then its other requirements.
    "$work/venv-opennmt/bin/python" -m pip install --quiet --no-deps OpenNMT-py==3.5.1
    "$work/venv-opennmt/bin/python" -m pip install --quiet configargparse 'ctranslate2>=3.24,<5' \
        'tensorboard>=2.3' flask waitress 'pyonmttok>=1.35,<2' pyyaml sacrebleu rapidfuzz \
        pyahocorasick fasttext-wheel spacy six sentencepiece  # sentencepiece: its subword transform
fi

if want seqattn; then
    run_dir="$out/runs/seqattn"
    config="$REPO_ROOT/configs/multi30k/$seqattn_config"
    echo "== seqattn: prepare (SentencePiece + encoding, outside the budget), then train" >&2
    seqattn prepare "$config" --run-dir "$run_dir" --set "data.path=$data" \
        > "$out/logs/seqattn.prepare.out" 2>&1
    timed "$out/logs/seqattn.train.time" "$PYTHON" -m seqattn train "$config" --run-dir "$run_dir" \
        --set "data.path=$data" --set "train.max_minutes=$budget" --overwrite \
        > "$out/logs/seqattn.train.out" 2>&1 || die "seqattn training failed; see $out/logs/seqattn.train.out"
    decode_seqattn
fi

if want joeynmt; then
    joey="$work/venv-joeynmt/bin/python"
    [[ -x $joey ]] || die "no $joey: run the install step first"
    echo "== JoeyNMT: train for $budget minutes" >&2
    rc=0
    timed "$out/logs/joeynmt.train.time" timeout -s INT -k 120 "$budget_s" \
        "$joey" -m joeynmt train "$work/configs/joeynmt_rnn_attn.yaml" --skip-test \
        > "$out/logs/joeynmt.train.out" 2>&1 || rc=$?
    check_stopped "$rc" "JoeyNMT training"
    decode_joeynmt
fi

if want opennmt; then
    onmt="$work/venv-opennmt/bin"
    [[ -x $onmt/onmt_train ]] || die "no $onmt/onmt_train: run the install step first"
    config="$work/configs/opennmt_$onmt_name.yaml"
    echo "== OpenNMT-py: build the vocabulary" >&2
    "$onmt/onmt_build_vocab" -config "$config" -n_sample -1 > "$out/logs/opennmt.vocab.out" 2>&1
    if [[ -z $onmt_steps ]]; then
        echo "== OpenNMT-py: ${probe_seconds}s probe of the step rate" >&2
        sed -E -e 's/^(train_steps|valid_steps): [0-9]+/\1: 1000000/' \
            -e "s|$work/models/onmt_$onmt_name/|$work/models/onmt_probe/|" \
            -e "s|^log_file: .*|log_file: $work/logs/onmt_probe.log|" "$config" > "$work/configs/opennmt_probe.yaml"
        timeout -s INT -k 30 "$probe_seconds" "$onmt/onmt_train" \
            -config "$work/configs/opennmt_probe.yaml" > "$out/logs/opennmt.probe.out" 2>&1 || true
        rm -rf "$work/models/onmt_probe"
        onmt_steps=$("${bench[@]}" onmt-steps "$out/logs/opennmt.probe.out" "$budget_s")
    fi
    echo "== OpenNMT-py: train $onmt_steps steps (about $budget minutes)" >&2
    sed -E "s/^(train_steps|valid_steps): [0-9]+/\1: $onmt_steps/" "$config" > "$work/configs/opennmt_run.yaml"
    rm -rf "$work/models/onmt_$onmt_name"
    rc=0
    # A hard cap two minutes past the budget; save_checkpoint_steps keeps a recent checkpoint.
    timed "$out/logs/opennmt.train.time" timeout -s INT -k 60 "$((budget_s + 120))" \
        "$onmt/onmt_train" -config "$work/configs/opennmt_run.yaml" \
        > "$out/logs/opennmt.train.out" 2>&1 || rc=$?
    check_stopped "$rc" "OpenNMT-py training"
    decode_opennmt
fi

if want decode; then  # all decoding again, side by side, on the models trained above
    decode_seqattn
    decode_joeynmt
    decode_opennmt
fi

if want table; then
    "${bench[@]}" table "$out"
fi
