#!/usr/bin/env bash
# Translate a split with fairseq-generate and score it with sacrebleu (BLEU, chrF, signatures).
set -euo pipefail

usage() {
  cat <<EOF
Usage: $(basename "$0") CONFIG --run-dir DIR [options]

Translates the SPLIT of CONFIG's data with the run's checkpoint (beam and length
penalty from CONFIG's GENERATE_ARGS), removes the subword segmentation (POST_PROCESS),
detokenises when CONFIG says DETOKENIZE=moses, checks that every sentence was
translated, and scores against REFERENCE_PREFIX/SPLIT.TGT with sacrebleu (BLEU with
tokenizer BLEU_TOKENIZE, default 13a, and chrF; both case-insensitive when CONFIG says
BLEU_LOWERCASE=1, for lowercased corpora). With TOKENIZED_REFERENCE_PREFIX set,
also the tokenised BLEU of the literature (TOKENIZED_BLEU=plain or compound-split).
Also scores the same model's perplexity on the validation split with plain
cross-entropy (skd-fairseq-validation-perplexity; comparable across criteria), once per
model: DIR/valid-perplexity.json is reused while it names the same checkpoint (sha256).
Writes DIR/result.SPLIT.json (metrics, signatures, valid_ppl, the run's train.json) and
DIR/hyp.SPLIT.txt; with --greedy, DIR/result.SPLIT.greedy.json and DIR/hyp.SPLIT.greedy.txt.

Options:
  --run-dir DIR        a directory written by scripts/train.sh
  --split NAME         valid or test (default: test)
  --checkpoint NAME    best or last, instead of CONFIG's AVERAGE_LAST (default: CONFIG's
                       EVAL_CHECKPOINT, else best, when CONFIG averages no checkpoints)
  --average-last N     average the last N update checkpoints (checkpoint_E_U.pt, from
                       --save-interval-updates) or epoch checkpoints (checkpointE.pt)
                       (default: CONFIG's AVERAGE_LAST, else 1; N > 1 excludes --checkpoint)
  --greedy             greedy decoding (--beam 1 after GENERATE_ARGS) instead of the config's
                       beam; the result records decoding "greedy"
  -h, --help           this text
EOF
}

repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/eval-lib.sh
. "$repo/scripts/eval-lib.sh"
decoding=beam args=()
for arg in "$@"; do
  if [ "$arg" = --greedy ]; then decoding=greedy; else args+=("$arg"); fi
done
parse_eval_args ${args[@]+"${args[@]}"}
# shellcheck source=/dev/null
. "$config"
cd "$repo"
reference=$REFERENCE_PREFIX/$split.$TGT
[ -f "$reference" ] || die "missing reference $reference (prepare the data first)"
lowercase=()  # case-insensitive BLEU and chrF, for lowercased corpora
case "${BLEU_LOWERCASE:-0}" in
  0) ;;
  1) lowercase=(--lowercase) ;;
  *) die "config's BLEU_LOWERCASE must be 0 or 1, got '$BLEU_LOWERCASE'" ;;
esac

decode_args=("${GENERATE_ARGS[@]}")
name=$split  # the output files' infix: test, or test.greedy
if [ "$decoding" = greedy ]; then
  decode_args+=(--beam 1)  # fairseq takes the last value
  name=$split.greedy
fi

# shellcheck source=scripts/device.sh
. "$repo/scripts/device.sh"
scored_model "$run_dir" "${checkpoint:-${EVAL_CHECKPOINT:-best}}" "${average_last:-${AVERAGE_LAST:-1}}"

echo "[evaluate] fairseq-generate $split ($decoding) with $model"
fairseq-generate "$DATA" --user-dir "$repo/skd_fairseq" --path "$model" --gen-subset "$split" \
  -s "$SRC" -t "$TGT" "${decode_args[@]}" --remove-bpe "$POST_PROCESS" \
  --required-batch-size-multiple 1 "${device[@]}" > "$run_dir/generate.$name.txt" 2> "$run_dir/generate.$name.log" \
  || { tail -n 20 "$run_dir/generate.$name.log" >&2; die "fairseq-generate failed (log: $run_dir/generate.$name.log)"; }
grep -qP '^H-\d+\t' "$run_dir/generate.$name.txt" \
  || die "fairseq-generate wrote no hypotheses for $split (see $run_dir/generate.$name.txt and .log)"
grep -P '^H-\d+\t' "$run_dir/generate.$name.txt" | sed 's/^H-//' | sort -n -k1,1 | cut -f3 > "$run_dir/hyp.$name.tok.txt"
case "${DETOKENIZE:-}" in
  "") cp "$run_dir/hyp.$name.tok.txt" "$run_dir/hyp.$name.txt" ;;
  moses) python -m skd_experiments.text_tools detokenize --lang "$TGT" < "$run_dir/hyp.$name.tok.txt" > "$run_dir/hyp.$name.txt" ;;
  *) die "config's DETOKENIZE must be empty or moses, got '$DETOKENIZE'" ;;
esac
tokenized=()
if [ -n "${TOKENIZED_REFERENCE_PREFIX:-}" ]; then
  [ -f "$TOKENIZED_REFERENCE_PREFIX/$split.$TGT" ] || die "missing tokenised reference $TOKENIZED_REFERENCE_PREFIX/$split.$TGT"
  tokenized=(--tokenized-hyp "$run_dir/hyp.$name.tok.txt" --tokenized-ref "$TOKENIZED_REFERENCE_PREFIX/$split.$TGT"
             --tokenized-bleu "${TOKENIZED_BLEU:-plain}")
fi

echo "[evaluate] validation perplexity of $model"
# --reuse: the beam and the greedy evaluation of one model share it (it does not depend on decoding).
python -m skd_experiments.validation_perplexity "$DATA" --path "$model" --subset valid -s "$SRC" -t "$TGT" \
  --out "$run_dir/valid-perplexity.json" --reuse "${device[@]}" > /dev/null 2> "$run_dir/valid-perplexity.log" \
  || { tail -n 20 "$run_dir/valid-perplexity.log" >&2; die "validation_perplexity failed (log: $run_dir/valid-perplexity.log)"; }

meta=(dataset="$DATASET" pair="$PAIR" split="$split" checkpoint="$checkpoint_label"
      generate_args="${decode_args[*]}" decoding="$decoding")
python -m skd_experiments.score_translation --hyp "$run_dir/hyp.$name.txt" --ref "$reference" \
  --tokenize "${BLEU_TOKENIZE:-13a}" ${lowercase[@]+"${lowercase[@]}"} ${tokenized[@]+"${tokenized[@]}"} \
  --valid-perplexity "$run_dir/valid-perplexity.json" \
  --out "$run_dir/result.$name.json" --train-summary "$run_dir/train.json" --meta "${meta[@]}"
echo "[evaluate] wrote $run_dir/result.$name.json"
