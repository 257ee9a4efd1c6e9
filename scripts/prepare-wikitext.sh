#!/usr/bin/env bash
# Binarise a WikiText-format directory for fairseq language modelling (fairseq's own recipe).
set -euo pipefail

usage() {
  cat <<EOF
Usage: $(basename "$0") -r DIR [options]

Binarises WikiText-format text (tokenised, '= Heading =' lines, <unk>) for
fairseq-train --task language_modeling, as fairseq's WikiText-103 recipe does:
fairseq-preprocess --only-source with a word-level dictionary of the training file.

Options:
  -r, --raw-dir DIR    directory with the WikiText files (WikiText-2/103: wiki.{train,valid,test}.tokens;
                       get them from https://huggingface.co/datasets/Salesforce/wikitext or the
                       pytorch/examples repository, word_language_model/data/wikitext-2/)
  -o, --out DIR        output directory (default: data/wikitext)
  --train FILE         training file name in DIR (default: wiki.train.tokens)
  --valid FILE         validation file name in DIR (default: wiki.valid.tokens)
  --test FILE          test file name in DIR (default: wiki.test.tokens)
  --lines N            keep only the first N lines of each file (quick runs and tests)
  --eval-lines N       keep only the first N lines of the validation and test files
                       (default: --lines; smaller evaluation splits for quick runs and tests)
  -h, --help           this text

The WikiText-2 sample in ../shared/data has no training split: use
  --train wiki.valid.tokens --valid wiki.test.tokens --test wiki.test.tokens
and say so wherever its numbers are reported.
Outputs OUT/bin (pass it to fairseq-train). Re-running skips finished steps.
EOF
}

raw_dir="" out=data/wikitext train=wiki.train.tokens valid=wiki.valid.tokens test=wiki.test.tokens lines="" eval_lines=""
while [ $# -gt 0 ]; do
  case "$1" in
    -r|--raw-dir) raw_dir=$2; shift 2 ;;
    -o|--out) out=$2; shift 2 ;;
    --train) train=$2; shift 2 ;;
    --valid) valid=$2; shift 2 ;;
    --test) test=$2; shift 2 ;;
    --lines) lines=$2; shift 2 ;;
    --eval-lines) eval_lines=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "prepare-wikitext: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done

die() { echo "prepare-wikitext: $*" >&2; exit 1; }
# shellcheck source=scripts/prepare-lib.sh
. "$(dirname "$0")/prepare-lib.sh"
[ -n "$raw_dir" ] || die "give the WikiText directory with --raw-dir (see --help)"
[ -d "$raw_dir" ] || die "raw directory '$raw_dir' does not exist"
[ -z "$lines" ] || [[ $lines =~ ^[1-9][0-9]*$ ]] || die "--lines must be a positive integer, got '$lines'"
[ -z "$eval_lines" ] || [[ $eval_lines =~ ^[1-9][0-9]*$ ]] \
  || die "--eval-lines must be a positive integer, got '$eval_lines'"
for f in "$train" "$valid" "$test"; do
  [ -s "$raw_dir/$f" ] || die "missing or empty $raw_dir/$f"
  grep -qE '^ = [^=].* = $' "$raw_dir/$f" || die "$raw_dir/$f has no ' = Heading = ' lines: not WikiText format"
done

mkdir -p "$out/text"
# The options and input that OUT is made from: another raw directory (or a replaced file) is refused.
# (eval_lines only when given, so that a directory prepared before the option existed is still taken.)
settings="train=$train valid=$valid test=$test lines=$lines${eval_lines:+ eval_lines=$eval_lines}"
options="$settings
$(input_identity "$raw_dir/$train" "$raw_dir/$valid" "$raw_dir/$test")"
refuse_other_options "$out/prepare.options" "$options" --out
echo "$options" > "$out/prepare.options"

if [ ! -f "$out/text/.done" ]; then
  for pair in "train:$train" "valid:$valid" "test:$test"; do
    n=$lines
    [ "${pair%%:*}" = train ] || n=${eval_lines:-$lines}
    awk -v n="$n" 'n == "" || NR <= n' "$raw_dir/${pair#*:}" > "$out/text/${pair%%:*}.tokens"
  done
  touch "$out/text/.done"
fi
if [ ! -f "$out/bin/.done" ]; then
  echo "[prepare-wikitext] fairseq-preprocess"
  rm -rf "${out:?}/bin"
  fairseq-preprocess --only-source --trainpref "$out/text/train.tokens" \
    --validpref "$out/text/valid.tokens" --testpref "$out/text/test.tokens" \
    --destdir "$out/bin" --workers 2 > "$out/preprocess.log" 2>&1 \
    || { tail -n 20 "$out/preprocess.log" >&2; die "fairseq-preprocess failed (log: $out/preprocess.log)"; }
  touch "$out/bin/.done"
fi
echo "[prepare-wikitext] ready: $out/bin ($(wc -l < "$out/bin/dict.txt") dictionary entries)"
