#!/usr/bin/env bash
# Train one run until the converged-schedule rule chooses its number of epochs, then cut it there.
set -euo pipefail

usage() {
  cat <<EOF
Usage: $(basename "$0") CONFIG --criterion-preset NAME --save-dir DIR [--cap N] [--window W] [--threshold T] [TRAIN.SH OPTIONS AND FAIRSEQ FLAGS...]

Trains with scripts/train.sh for up to --cap epochs, validating every epoch, and watches the
validation curve: as soon as skd-fairseq-choose-epochs decides the run's epoch E (the first
epoch after which the validation loss improves by less than T over the next W epochs),
fairseq-train is stopped, the run is cut back to epoch E (skd-fairseq-cut-run: bit for bit
the run --max-epoch E trains) and E is written to DIR/chosen-epoch. A config trained to E is
then the config with --max-epoch E, and CONFIG's AVERAGE_LAST epoch checkpoints up to E are
kept for its evaluation. This is how the converged configs chose their epochs
(results/multi30k-de-en-epochs.md), and how the KD table's teacher candidates are trained.

  --cap N         the most epochs (default 30)
  --window W      epochs the improvement is measured over (default 3)
  --threshold T   relative improvement below which the rule stops (default 0.01)
  (every other option goes to scripts/train.sh, e.g. --seed 1 --method teacher-wide
   --encoder-layers 3; --max-epoch and --keep-last-epochs are set here)

Re-running resumes an interrupted run (from DIR/checkpoint_last.pt) and does nothing once
DIR/chosen-epoch exists. The watch polls the log every WATCH_SECONDS (default 60).
EOF
}

[ $# -ge 1 ] || { usage >&2; exit 2; }
case "$1" in -h|--help) usage; exit 0 ;; esac
config=$(realpath -m -- "$1"); shift
save_dir="" cap=30 window=3 threshold=0.01 pass=()
while [ $# -gt 0 ]; do
  case "$1" in
    --save-dir) save_dir=$(realpath -m -- "$2"); shift 2 ;;
    --cap) cap=$2; shift 2 ;;
    --window) window=$2; shift 2 ;;
    --threshold) threshold=$2; shift 2 ;;
    --max-epoch|--keep-last-epochs) echo "train-to-convergence: $1 is set here (from --cap and the config's AVERAGE_LAST)" >&2; exit 2 ;;
    -h|--help) usage; exit 0 ;;
    *) pass+=("$1"); shift ;;
  esac
done
die() { echo "train-to-convergence: $*" >&2; exit 1; }
[ -f "$config" ] || die "config '$config' not found (see configs/)"
[ -n "$save_dir" ] || die "give --save-dir DIR: the run is watched and cut there"
[[ $cap =~ ^[1-9][0-9]*$ ]] || die "--cap must be a positive integer, got '$cap'"
[[ $window =~ ^[1-9][0-9]*$ ]] && [ "$window" -lt "$cap" ] || die "--window must be a positive integer below --cap, got '$window'"
[[ $threshold =~ ^0?\.[0-9]+$ ]] || die "--threshold must be in (0, 1), got '$threshold'"
repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/device.sh
. "$repo/scripts/device.sh"

if [ -f "$save_dir/chosen-epoch" ]; then
  echo "[train-to-convergence] $save_dir chose epoch $(cat "$save_dir/chosen-epoch") already"
  exit 0
fi
# The config's evaluation averages its last AVERAGE_LAST epochs: those up to E must survive the
# W epochs trained past E before the rule can decide.
# shellcheck source=/dev/null
average=$(. "$config"; echo "${AVERAGE_LAST:-1}")
choose=(skd-fairseq-choose-epochs --window "$window" --threshold "$threshold" --cap "$cap")
bash "$repo/scripts/train.sh" "$config" --save-dir "$save_dir" ${pass[@]+"${pass[@]}"} \
  --max-epoch "$cap" --keep-last-epochs "$((window + average))" &
train=$!
epoch=""
while kill -0 "$train" 2> /dev/null; do
  sleep "${WATCH_SECONDS:-60}"
  if [ -f "$save_dir/train.log" ] && epoch=$("${choose[@]}" "$save_dir/train.log" 2> /dev/null) && [ "$epoch" -lt "$cap" ]; then
    echo "[train-to-convergence] the rule chose epoch $epoch: stopping fairseq-train"
    wrapper=$(pgrep -f "run_and_measure.*$save_dir/train.json" | head -n 1 || true)
    [ -z "$wrapper" ] || pkill -TERM -P "$wrapper" || true
    break
  fi
done
status=0
wait "$train" || status=$?
epoch=$("${choose[@]}" "$save_dir/train.log") \
  || die "no epoch chosen from $save_dir/train.log (train.sh exited $status; see its output above)"
[ "$epoch" -ge "$cap" ] || skd-fairseq-cut-run "$save_dir" --epoch "$epoch"
echo "$epoch" > "$save_dir/chosen-epoch"
echo "[train-to-convergence] $save_dir: epoch $epoch chosen (window $window, threshold $threshold, cap $cap)"
