#!/usr/bin/env bash
# Sequence-level KD (Kim & Rush 2016): the teacher's beam-search translations become the training targets.
set -euo pipefail

usage() {
  cat <<EOF
Usage: $(basename "$0") --data BIN --teacher CKPT[:CKPT...] -s SRC -t TGT --out DIR [options]

Translates the training source of the binarised data BIN with the teacher (an ensemble
when several checkpoints are given, separated by ':') using fairseq-generate
--gen-subset train, puts the translations back in the original order, checks that every
pair was translated (and, by default, that none is empty), and binarises them as the new
training target with BIN's dictionaries, which the teacher was trained with
(fairseq-preprocess --srcdict --tgtdict). Valid and test keep their references (BIN's
files are copied). DIR/bin is then a data directory for any student:
  scripts/train.sh CONFIG --data DIR/bin --criterion-preset PRESET
and with a word-level KD criterion it is "seq-KD + word-KD" as in Kim & Rush.

Re-running skips finished steps (DIR/.generated, DIR/bin/.done); another teacher
(a checkpoint's path, size or content), other training data or other generation
options translate again. DIR/bin must not be BIN or hold it (it is replaced).

Options:
  --data BIN           fairseq-preprocess output with train/valid/test and dict.SRC/TGT.txt
  --teacher CKPT       teacher checkpoint(s), trained on BIN
  -s SRC, -t TGT       source and target language
  --out DIR            output directory
  --beam N             beam size (default 5)
  --lenpen X           length penalty (default 1.0)
  --max-tokens N       fairseq-generate --max-tokens (default 8000)
  --max-len-a A        longest translation A * source length + B (default 1.2)
  --max-len-b B        (default 10)
  --on-empty MODE      fail (default): an empty translation stops the script;
                       reference: keep the original target for that pair (counted)
  -h, --help           this text
EOF
}

data="" teacher="" src="" tgt="" out="" beam=5 lenpen=1.0 max_tokens=8000 max_len_a=1.2 max_len_b=10 on_empty=fail
while [ $# -gt 0 ]; do
  case "$1" in
    --data) data=$(realpath -m -- "$2"); shift 2 ;;
    --teacher) teacher=$2; shift 2 ;;
    -s) src=$2; shift 2 ;;
    -t) tgt=$2; shift 2 ;;
    --out) out=$(realpath -m -- "$2"); shift 2 ;;
    --beam) beam=$2; shift 2 ;;
    --lenpen) lenpen=$2; shift 2 ;;
    --max-tokens) max_tokens=$2; shift 2 ;;
    --max-len-a) max_len_a=$2; shift 2 ;;
    --max-len-b) max_len_b=$2; shift 2 ;;
    --on-empty) on_empty=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "distill-sequence-level: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done

die() { echo "distill-sequence-level: $*" >&2; exit 1; }
repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/prepare-lib.sh
. "$repo/scripts/prepare-lib.sh"  # input_identity
# shellcheck source=scripts/device.sh
. "$repo/scripts/device.sh"  # the project's python first on PATH, for the checks below too
[ -n "$data" ] && [ -n "$teacher" ] && [ -n "$src" ] && [ -n "$tgt" ] && [ -n "$out" ] \
  || die "give --data, --teacher, -s, -t and --out (see --help)"
# OUT/bin is deleted and rebuilt: it must not be the data it is made from, nor hold it
# (real paths, so a symlink or another spelling of the same directory is caught too).
out_bin=$(realpath -m -- "$out/bin")
case "$data/" in
  "$out_bin/"*) die "--out $out would replace $out_bin, which is (or holds) the --data directory $data: the data would be deleted; give another --out (e.g. --out $out/distilled)" ;;
esac
for f in "dict.$src.txt" "dict.$tgt.txt"; do
  [ -f "$data/$f" ] || die "missing $data/$f: --data must be a fairseq-preprocess output"
done
for split in train valid test; do
  for lang in "$src" "$tgt"; do
    [ -f "$data/$split.$src-$tgt.$lang.bin" ] && [ -f "$data/$split.$src-$tgt.$lang.idx" ] \
      || die "missing $data/$split.$src-$tgt.$lang.{bin,idx}"
  done
done
teachers=()
IFS=: read -r -a teachers <<< "$teacher"
for ckpt in "${teachers[@]}"; do
  [ -f "$ckpt" ] || die "teacher checkpoint '$ckpt' not found"
  # Same-sized but different dictionaries would translate into the wrong words, silently.
  python -m skd_experiments.check_teacher "$ckpt" "$data" "$src" "$tgt"
done
[[ $beam =~ ^[1-9][0-9]*$ ]] || die "--beam must be a positive integer, got '$beam'"
case "$on_empty" in fail|reference) ;; *) die "--on-empty must be fail or reference, got '$on_empty'" ;; esac
mkdir -p "$out"

count_pairs() {
  python -m skd_experiments.indexed_sizes "$1" | cut -d' ' -f1
}
pairs=$(count_pairs "$data/train.$src-$tgt.$tgt")
# What is translated, by what and how: the checkpoints' and the training source's identity
# (input_identity), so a teacher retrained (or data prepared again) at the same path translates again.
signature="data=$data teacher=$teacher beam=$beam lenpen=$lenpen max_len=$max_len_a,$max_len_b
$(input_identity "${teachers[@]}" "$data/train.$src-$tgt.$src.bin" "$data/train.$src-$tgt.$src.idx")"
if [ ! -f "$out/.generated" ] || [ "$(cat "$out/.generated")" != "$signature" ]; then
  echo "[distill] translating $pairs training sentences with $teacher (beam $beam, lenpen $lenpen)"
  rm -rf "${out:?}/bin" "${out:?}/.generated"
  fairseq-generate "$data" --user-dir "$repo/skd_fairseq" --path "$teacher" --gen-subset train \
    -s "$src" -t "$tgt" --beam "$beam" --lenpen "$lenpen" --nbest 1 --max-tokens "$max_tokens" \
    --max-len-a "$max_len_a" --max-len-b "$max_len_b" --required-batch-size-multiple 1 "${device[@]}" \
    > "$out/generate.train.txt" 2> "$out/generate.train.log" \
    || { tail -n 20 "$out/generate.train.log" >&2; die "fairseq-generate failed (log: $out/generate.train.log)"; }
  printf '%s' "$signature" > "$out/.generated"
fi

if [ ! -f "$out/bin/.done" ]; then
  python -m skd_experiments.distilled_targets --generate-output "$out/generate.train.txt" \
    --sentences "$pairs" --prefix "$out/train" -s "$src" -t "$tgt" --on-empty "$on_empty" \
    --summary "$out/distilled.json"
  rm -rf "${out:?}/bin"
  mkdir -p "$out/bin"
  fairseq-preprocess --source-lang "$src" --target-lang "$tgt" --trainpref "$out/train" \
    --srcdict "$data/dict.$src.txt" --tgtdict "$data/dict.$tgt.txt" --destdir "$out/bin" \
    --workers "$(nproc)" > "$out/preprocess.log" 2>&1 \
    || { tail -n 20 "$out/preprocess.log" >&2; die "fairseq-preprocess failed (log: $out/preprocess.log)"; }
  for split in valid test; do
    for lang in "$src" "$tgt"; do
      cp "$data/$split.$src-$tgt.$lang.bin" "$data/$split.$src-$tgt.$lang.idx" "$out/bin/"
    done
  done
  got=$(count_pairs "$out/bin/train.$src-$tgt.$tgt")
  [ "$got" = "$pairs" ] || die "binarised $got distilled pairs, expected $pairs (see $out/preprocess.log)"
  touch "$out/bin/.done"
fi
echo "[distill] ready: $out/bin ($pairs pairs; $(tr -d '\n ' < "$out/distilled.json"))"
