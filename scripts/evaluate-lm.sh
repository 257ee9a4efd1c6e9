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
probability, from which scripts/make-tables.py --significance bootstraps perplexity.
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
scored_model "$run_dir" "${checkpoint:-${EVAL_CHECKPOINT:-best}}" "${average_last:-${AVERAGE_LAST:-1}}"

# shellcheck source=scripts/device.sh
. "$repo/scripts/device.sh"
log=$run_dir/eval-lm.$split.log
echo "[evaluate-lm] fairseq-eval-lm $split with $model"
fairseq-eval-lm "$DATA" --user-dir "$repo/skd_fairseq" --path "$model" --gen-subset "$split" \
  --output-word-probs "${EVAL_LM_ARGS[@]}" "${device[@]}" > "$log" 2>&1 \
  || { tail -n 20 "$log" >&2; die "fairseq-eval-lm failed (log: $log)"; }

python - "$log" "$run_dir" "$split" "$checkpoint_label" "$DATASET" "${EVAL_LM_ARGS[*]}" "$repo/scripts" "$DATA" <<'EOF'
import math, os, re, sys

log, run_dir, split, checkpoint, dataset, eval_args, scripts, data = sys.argv[1:]
sys.path.insert(0, scripts)
from results import write_result

text = open(log).read()
loss = re.search(r"Loss \(base 2\): ([0-9.]+), Perplexity: ([0-9.]+)", text)
tokens = re.search(r"Evaluated ([0-9,]+) tokens", text)
if not loss or not tokens:
    sys.exit(f"evaluate-lm: no perplexity in {log}")
# --output-word-probs: one line per sample, "ID tok [logp]<TAB>tok [logp]...", natural log.
samples, infinite = {}, 0
for line in text.splitlines():
    match = re.search(r"fairseq_cli\.eval_lm(?::| \| )(\d+) (.*)$", line)  # either logging format
    if match:
        scores = [float(s) for s in re.findall(r" \[(-?(?:[0-9.]+|inf))\](?:\t|$)", " " + match.group(2))]
        infinite += sum(not math.isfinite(s) for s in scores)
        scores = [s for s in scores if math.isfinite(s)]  # as fairseq-eval-lm, which skips infinite scores
        samples[int(match.group(1))] = (len(scores), math.fsum(scores))
scored = sum(n for n, _ in samples.values())
ppl = math.exp(-math.fsum(s for _, s in samples.values()) / max(scored, 1))
# Every token of the split must be scored once (each block's targets are its own tokens, end of
# sentence included; a context window only adds context). fairseq-eval-lm silently drops a block
# longer than the model's positions (ignore_invalid_inputs, one "will be skipped" log line).
from indexed_sizes import split_sizes

split_path = os.path.join(data.split(os.pathsep)[0], split)  # fairseq evaluates the first of DATA1:DATA2
sizes = split_sizes(split_path)
if sizes is None:
    sys.exit(f"evaluate-lm: cannot read the {split} split of {data} ({split_path}.bin/.idx) to count its tokens")
expected = int(sizes.sum())
if scored != expected:
    skipped = re.search(r"[0-9,]+ samples (?:from \S+ )?have invalid sizes and will be skipped.*", text)
    sys.exit(f"evaluate-lm: fairseq-eval-lm scored {scored:,} of the {expected:,} tokens of {split_path} "
             + (f"(it drops the blocks longer than the model's max positions: \"{skipped.group(0)}\"); give "
                "EVAL_LM_ARGS a --tokens-per-sample (minus --context-window) the model takes, or another --sample-break-mode"
                if skipped else f"({infinite} tokens had an infinite log-probability)" if infinite
                else f"(the log has per-token scores for {len(samples)} samples only)")
             + f"; no result written (log: {log})")
# The per-sample scores must reproduce fairseq's own perplexity, or the bootstrap would test something else.
if not samples or abs(ppl - float(loss.group(2))) > 1e-3 * float(loss.group(2)) + 0.01:
    sys.exit(f"evaluate-lm: the per-sample scores in {log} ({len(samples)} samples, perplexity {ppl:.2f}) "
             f"do not reproduce fairseq-eval-lm's perplexity {loss.group(2)}")
scores_file = f"scores.{split}.tsv"
with open(os.path.join(run_dir, scores_file), "w") as f:
    f.write("id\ttokens\tlogprob\n")
    f.writelines(f"{i}\t{n}\t{s!r}\n" for i, (n, s) in sorted(samples.items()))
result = {"dataset": dataset, "pair": "", "split": split, "checkpoint": checkpoint, "eval_lm_args": eval_args,
          "scores": scores_file,
          "metrics": {"ppl": float(loss.group(2)), "loss_base2": float(loss.group(1)),
                      "tokens": int(tokens.group(1).replace(",", ""))}}
out = os.path.join(run_dir, f"result.{split}.json")
result = write_result(out, result, os.path.join(run_dir, "train.json"))
print(f"perplexity {result['metrics']['ppl']:.2f} on {result['metrics']['tokens']} tokens -> {out}", file=sys.stderr)
EOF
