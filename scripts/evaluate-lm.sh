#!/usr/bin/env bash
# Perplexity of a language-model run with fairseq-eval-lm, into one machine-readable result file.
set -euo pipefail

usage() {
  cat <<EOF
Usage: $(basename "$0") CONFIG --run-dir DIR [--split valid|test] [--checkpoint best|last] [--average-last N]

Runs fairseq-eval-lm on the SPLIT of CONFIG's data with the run's checkpoint and
CONFIG's EVAL_LM_ARGS (configs/wikitext103.sh: complete sentences with 2,560 tokens of
context), and checks that every token of the split was scored (fairseq-eval-lm silently skips
blocks longer than the model takes).
Writes DIR/result.SPLIT.json (perplexity, base-2 loss, scored tokens, the run's
train.json), DIR/eval-lm.SPLIT.log and DIR/scores.SPLIT.tsv: per scored sample
(fairseq-eval-lm's blocks of the split), its id, number of tokens and summed natural-log
probability, from which skd-fairseq-tables --significance bootstraps perplexity.
With --average-last N > 1 (default: CONFIG's AVERAGE_LAST, else 1) the model is the
average of the run's last N update or epoch checkpoints; --checkpoint best|last scores
that checkpoint instead (default: CONFIG's EVAL_CHECKPOINT, else best, when CONFIG averages
no checkpoints; an explicit --checkpoint wins over CONFIG's AVERAGE_LAST).
EOF
}

repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/eval-lib.sh
. "$repo/scripts/eval-lib.sh"
parse_eval_args "$@"
# shellcheck source=/dev/null
. "$config"
cd "$repo"
# The project's python first on PATH before anything runs python (the checkpoint averaging too).
# shellcheck source=scripts/device.sh
. "$repo/scripts/device.sh"
scored_model "$run_dir" "${checkpoint:-${EVAL_CHECKPOINT:-best}}" "${average_last:-${AVERAGE_LAST:-1}}"
log=$run_dir/eval-lm.$split.log
echo "[evaluate-lm] fairseq-eval-lm $split with $model"
fairseq-eval-lm "$DATA" --user-dir "$repo/skd_fairseq" --path "$model" --gen-subset "$split" \
  --output-word-probs "${EVAL_LM_ARGS[@]}" "${device[@]}" > "$log" 2>&1 \
  || { tail -n 20 "$log" >&2; die "fairseq-eval-lm failed (log: $log)"; }

python -m skd_experiments.eval_lm_result "$log" --run-dir "$run_dir" --split "$split" --data "$DATA" \
  --checkpoint "$checkpoint_label" --dataset "$DATASET" --eval-args="${EVAL_LM_ARGS[*]}"
