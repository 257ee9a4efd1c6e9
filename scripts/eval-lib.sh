# Sourced by the evaluation scripts (evaluate-translation.sh, evaluate-lm.sh), after they
# define die() and repo: which model a run is scored with.

# scored_model RUN_DIR CHECKPOINT AVERAGE_LAST: sets `model` (a checkpoint path) and
# `checkpoint_label`. AVERAGE_LAST > 1 averages the run's last update or epoch checkpoints
# into RUN_DIR/checkpoint_avgN.pt; otherwise CHECKPOINT (best or last) is used as it is.
scored_model() {
  local run_dir=$1 checkpoint=$2 average_last=$3 averaged
  case "$checkpoint" in best|last) ;; *) die "--checkpoint must be best or last, got '$checkpoint'" ;; esac
  [[ $average_last =~ ^[1-9][0-9]*$ ]] || die "--average-last must be a positive integer, got '$average_last'"
  if [ "$average_last" -gt 1 ]; then
    model=$run_dir/checkpoint_avg$average_last.pt
    averaged=$(python "$repo/scripts/average_checkpoints.py" --run-dir "$run_dir" --last "$average_last" --output "$model") \
      || die "could not average the last $average_last checkpoints of $run_dir (see above)"
    echo "[evaluate] $averaged"
    checkpoint_label="average of last $average_last"
  else
    model=$run_dir/checkpoint_$checkpoint.pt
    [ -f "$model" ] || die "missing $model"
    checkpoint_label=$checkpoint
  fi
}
