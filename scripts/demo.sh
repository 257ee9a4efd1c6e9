#!/usr/bin/env bash
# The main job: Multi30k de->en, a small transformer with and without SKD, BLEU on test2016.
set -euo pipefail

usage() {
  cat <<EOF
Usage: $(basename "$0") [options]

Sets up the environment if needed, prepares Multi30k de->en, trains the demo
transformer once per (preset, seed), translates test2016 and prints a table of
BLEU and chrF (sacrebleu). Sized for about 30 minutes on a 2-core CPU; uses a GPU
when torch sees one. Re-running resumes and skips finished steps.

Options:
  --out DIR          output directory (default: runs/demo)
  --presets "A B"    criterion presets (default: "baseline skd-neighbours"; see configs/presets.sh)
  --seeds "1 2"      seeds (default: "1")
  --max-update N     updates per model (default: the config's, 500)
  --epochs N         train for N epochs instead (Multi30k: 133 updates an epoch)
  --layers N         encoder and decoder layers (default: the config's, 2)
  --dim D            embedding size; feed-forward size 2D (default: the config's, 256 and 512)
  --config FILE      experiment config (default: configs/multi30k-de-en-demo.sh)
  -h, --help         this text

Data: MULTI30K_DIR (a directory with the dataset's data/task1/raw/*.gz files) if set,
else ../shared/data/multi30k beside the checkout if it exists, else a download by
scripts/prepare-multi30k.sh from \$MULTI30K_URL (a mirror's base URL; default data/task1/raw/
of https://github.com/multi30k/dataset) into the config's data directory (by default
data/multi30k.de-en/download), each file kept only when it has its split's line count.
EOF
}

repo=$(cd "$(dirname "$0")/.." && pwd)
out=runs/demo presets="baseline skd-neighbours" seeds=1 max_update="" epochs="" layers="" dim=""
config=configs/multi30k-de-en-demo.sh
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$(realpath -m -- "$2"); shift 2 ;;
    --presets) presets=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --max-update) max_update=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --layers) layers=$2; shift 2 ;;
    --dim) dim=$2; shift 2 ;;
    --config) config=$(realpath -m -- "$2"); shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "demo: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
die() { echo "demo: $*" >&2; exit 1; }
for pair in "--max-update:$max_update" "--epochs:$epochs" "--layers:$layers" "--dim:$dim"; do
  value=${pair#*:}
  [ -z "$value" ] || [[ $value =~ ^[1-9][0-9]*$ ]] || die "${pair%%:*} must be a positive integer, got '$value'"
done
[ -z "$max_update" ] || [ -z "$epochs" ] || die "give --max-update or --epochs, not both"
for seed in $seeds; do [[ $seed =~ ^[0-9]+$ ]] || die "seeds must be non-negative integers, got '$seed'"; done

cd "$repo"
listed=$(bash scripts/train.sh "$config" --criterion-preset --list) || die "could not list the presets of $config"
for preset in $presets; do  # checked before the first model trains
  grep -qxF "$preset" <<< "$listed" || die "preset '$preset' $(grep -qxF "$preset teacher" <<< "$listed" \
    && echo "distils from a teacher: see scripts/reproduce.sh kd-multi30k" || echo "is unknown (one of: $(grep -v ' teacher$' <<< "$listed" | paste -sd' '))")"
done
say() { echo "[demo] $*"; }
# Runs a step with its output in a file; on failure, shows the file's last lines and stops.
quietly() {
  local out=$1; shift
  "$@" > "$out" 2>&1 || { echo "[demo] failed: $*; the last lines of $out:" >&2; tail -n 30 "$out" >&2; exit 1; }
}
mkdir -p "$out"
say "environment: ${SKD_VENV:-$repo/.venv} (scripts/setup-env.sh)"
quietly "$out/setup-env.log" bash scripts/setup-env.sh
export PATH="${SKD_VENV:-$repo/.venv}/bin:$PATH"

if [ -z "${MULTI30K_DIR:-}" ] && [ -d "$repo/../shared/data/multi30k" ]; then
  export MULTI30K_DIR=$repo/../shared/data/multi30k
fi
# shellcheck source=/dev/null
. "$config"
if [ -f "$DATA/.done" ]; then
  say "data: $DATA (prepared)"
else
  say "data: Multi30k from ${MULTI30K_DIR:-the public repository (download)} -> $DATA"
  quietly "$out/prepare.log" bash "${PREPARE[@]}"
fi

extra=(--log-interval 10)  # a progress line every ~15 s on a 2-core CPU
[ -z "$max_update" ] || extra+=(--max-update "$max_update")
[ -z "$epochs" ] || extra+=(--max-epoch "$epochs" --max-update 0)
[ -z "$layers" ] || extra+=(--encoder-layers "$layers" --decoder-layers "$layers")
[ -z "$dim" ] || extra+=(--encoder-embed-dim "$dim" --decoder-embed-dim "$dim"
                         --encoder-ffn-embed-dim $((2 * dim)) --decoder-ffn-embed-dim $((2 * dim)))
say "training and scoring: $(wc -w <<< "$presets") preset(s) x $(wc -w <<< "$seeds") seed(s) in $out; fairseq's log of each run: $out/PRESET/seedSEED/train.log"
results=()
models_left=$(( $(wc -w <<< "$presets") * $(wc -w <<< "$seeds") ))
for seed in $seeds; do
  for preset in $presets; do
    run_dir=$out/$preset/seed$seed
    mkdir -p "$run_dir"
    models_left=$((models_left - 1))
    train=(bash scripts/train.sh "$config" --criterion-preset "$preset" --seed "$seed" --save-dir "$run_dir" "${extra[@]}")
    if "${train[@]}" --check-finished > /dev/null 2>&1; then
      say "$preset seed $seed: already trained ($run_dir)"
    else
      # --queued: the progress line estimates the demo's time left from this model's pace.
      python -m skd_experiments.follow_training --label "$preset seed $seed" --log "$run_dir/train.log" \
        --out "$run_dir/demo-train.out" --queued "$models_left" -- "${train[@]}" \
        || { echo "[demo] training failed; fairseq's log: $run_dir/train.log" >&2; exit 1; }
      say "$preset seed $seed: trained; checkpoints in $run_dir (checkpoint_best.pt is scored)"
    fi
    if [ "$run_dir/result.test.json" -nt "$run_dir/checkpoint_best.pt" ]; then
      say "$preset seed $seed: already scored ($run_dir/result.test.json)"
    else
      quietly "$run_dir/evaluate.test.log" bash scripts/evaluate-translation.sh "$config" --run-dir "$run_dir" --split test --checkpoint best
      score=$(python -c 'import json, sys; m = json.load(open(sys.argv[1]))["metrics"]; print("test2016 BLEU %.2f, chrF %.2f" % (m["bleu"], m["chrf"]))' "$run_dir/result.test.json")
      say "$preset seed $seed: $score (log: $run_dir/evaluate.test.log)"
    fi
    results+=("$run_dir/result.test.json")
  done
done

echo
python -m skd_experiments.make_tables "${results[@]}" --plot "$out/curves.png" 2> "$out/make-tables.log" \
  || { cat "$out/make-tables.log" >&2; die "the table failed (above; $out/make-tables.log)"; }
say "validation curves: $out/curves.png"
