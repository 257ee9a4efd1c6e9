# shellcheck shell=bash
# Sourced by the evaluation scripts (evaluate-translation.sh, evaluate-lm.sh), after they
# define usage() and repo: their shared command line, and which model a run is scored with.

die() { echo "$(basename "$0" .sh): $*" >&2; exit 1; }

# parse_eval_args "$@": CONFIG --run-dir DIR [--split valid|test] [--checkpoint best|last]
# [--average-last N]; sets config, run_dir, split, checkpoint and average_last (the last two
# empty when not given; average_last 1 with --checkpoint) and checks what needs no config. The
# caller sources "$config".
parse_eval_args() {
  [ $# -ge 1 ] || { usage >&2; exit 2; }
  case "$1" in -h|--help) usage; exit 0 ;; esac
  config=$(realpath -m -- "$1"); shift
  run_dir="" split=test checkpoint="" average_last=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --run-dir) run_dir=$(realpath -m -- "$2"); shift 2 ;;
      --split) split=$2; shift 2 ;;
      --checkpoint) checkpoint=$2; shift 2 ;;
      --average-last) average_last=$2; shift 2 ;;
      -h|--help) usage; exit 0 ;;
      *) echo "$(basename "$0" .sh): unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
  done
  [ -f "$config" ] || die "config '$config' not found"
  [ -n "$run_dir" ] && [ -d "$run_dir" ] || die "give an existing --run-dir (a scripts/train.sh output directory)"
  case "$split" in valid|test) ;; *) die "--split must be valid or test, got '$split'" ;; esac
  # An explicit --checkpoint wins over the config's AVERAGE_LAST; against --average-last N > 1 it is a contradiction.
  if [ -n "$checkpoint" ]; then
    case "${average_last:-1}" in
      1) average_last=1 ;;
      *) die "--checkpoint $checkpoint and --average-last $average_last both choose the scored model: give one" ;;
    esac
  fi
}

# scored_model RUN_DIR CHECKPOINT AVERAGE_LAST: sets `model` (a checkpoint path) and
# `checkpoint_label`. AVERAGE_LAST > 1 averages the run's last update or epoch checkpoints
# into RUN_DIR/checkpoint_avgN.pt; otherwise CHECKPOINT (best or last) is used as it is.
scored_model() {
  local run_dir=$1 checkpoint=$2 average_last=$3 averaged
  case "$checkpoint" in best|last) ;; *) die "--checkpoint must be best or last, got '$checkpoint'" ;; esac
  [[ $average_last =~ ^[1-9][0-9]*$ ]] || die "--average-last must be a positive integer, got '$average_last'"
  if [ "$average_last" -gt 1 ]; then
    model=$run_dir/checkpoint_avg$average_last.pt
    averaged=$(python -m skd_experiments.average_checkpoints --run-dir "$run_dir" --last "$average_last" --output "$model") \
      || die "could not average the last $average_last checkpoints of $run_dir (see above)"
    echo "[evaluate] $averaged"
    checkpoint_label="average of last $average_last"
  else
    model=$run_dir/checkpoint_$checkpoint.pt
    [ -f "$model" ] || die "missing $model"
    # shellcheck disable=SC2034  # read by the script that sources this file
    checkpoint_label=$checkpoint
  fi
}
