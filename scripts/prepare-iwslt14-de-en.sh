#!/usr/bin/env bash
# IWSLT'14 German-English as fairseq's examples/translation/prepare-iwslt14.sh prepares it.
set -euo pipefail

usage() {
  cat <<EOF
Usage: $(basename "$0") [-r ARCHIVE_OR_DIR] [options]

Prepares IWSLT'14 de-en exactly as fairseq's recipe (examples/translation/prepare-iwslt14.sh),
so scores compare with the literature: the TED talk transcripts without their XML
header lines, Moses tokenisation (sacremoses), clean-corpus-n (ratio 1.5, 1-175 tokens),
lowercasing; every 23rd training pair as validation; test = dev2010 + TEDX.dev2012 +
tst2010 + tst2011 + tst2012; joint BPE with 10,000 merges (subword-nmt) learnt on the
training data; fairseq-preprocess with one dictionary per language.

Options:
  -r, --raw PATH       the IWSLT 2014 de-en archive (de-en.tgz, the file fairseq's recipe
                       downloads from https://wit3.fbk.eu/archive/2014-01/texts/de/en/de-en.tgz;
                       that host has moved: mirrors of the same archive exist, e.g. the
                       IWSLT 2014 release on https://wit3.fbk.eu or the "iwslt2014" copies on
                       Hugging Face), or its extracted de-en/ directory. Without -r, the
                       archive is downloaded from that URL (or \$IWSLT14_URL) into
                       OUT/download; when that fails, get it by hand and pass -r
  -o, --out DIR        output directory (default: data/iwslt14.de-en)
  --bpe-tokens N       BPE merges (default: 10000, as fairseq)
  --skip-count-check   do not compare the split sizes with fairseq's (for other releases)
  -h, --help           this text

Outputs OUT/bin (for fairseq-train), OUT/tok/{valid,test}.{de,en} (tokenised, lowercased:
the references of the literature's tokenised BLEU), OUT/raw/{valid,test}.{de,en} (the same
sentences untokenised, for sacrebleu) and OUT/code (the BPE codes).
Expected split sizes (fairseq's): train 160,239, valid 7,283, test 6,750 pairs.
Re-running skips finished steps; other options or another input need another --out.
EOF
}

raw="" out=data/iwslt14.de-en bpe_tokens=10000 count_check=1
while [ $# -gt 0 ]; do
  case "$1" in
    -r|--raw) raw=$2; shift 2 ;;
    -o|--out) out=$2; shift 2 ;;
    --bpe-tokens) bpe_tokens=$2; shift 2 ;;
    --skip-count-check) count_check=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "prepare-iwslt14: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
die() { echo "prepare-iwslt14: $*" >&2; exit 1; }
[[ $bpe_tokens =~ ^[1-9][0-9]*$ ]] || die "--bpe-tokens must be a positive integer, got '$bpe_tokens'"
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python}
tools=("$python" -m skd_experiments.text_tools)
src=de tgt=en
mkdir -p "$out/tmp" "$out/tok" "$out/raw"
count() { wc -l < "$1" | tr -d ' '; }
# shellcheck source=scripts/prepare-lib.sh
. "$here/prepare-lib.sh"

# 0. No archive given: the recipe's download (its host has moved; IWSLT14_URL points elsewhere).
if [ -z "$raw" ]; then
  url=${IWSLT14_URL:-https://wit3.fbk.eu/archive/2014-01/texts/de/en/de-en.tgz}
  raw=$out/download/de-en.tgz
  download "$url" "$raw" "get de-en.tgz by hand (see --help for mirrors) and pass it with -r"
fi

# 1. The original files, and the options and input that OUT is made from.
tests=(IWSLT14.TED.dev2010 IWSLT14.TEDX.dev2012 IWSLT14.TED.tst2010 IWSLT14.TED.tst2011 IWSLT14.TED.tst2012)
inputs=()
for l in $src $tgt; do
  inputs+=("train.tags.de-en.$l")
  for t in "${tests[@]}"; do inputs+=("$t.de-en.$l.xml"); done
done
check_inputs() {
  local f
  for f in "${inputs[@]}"; do [ -s "$orig/$f" ] || die "missing $orig/$f"; done
}
if [ -f "$raw" ]; then
  input=$(input_identity "$raw")
else
  orig=$raw
  [ -d "$orig" ] || die "$orig is neither the de-en.tgz archive nor its extracted de-en/ directory"
  check_inputs
  input=$(input_identity "${inputs[@]/#/$orig/}")
fi
# count_check is part of it: a run with the checks must not take a build made without them.
options="bpe_tokens=$bpe_tokens
count_check=$count_check
$input"
refuse_other_options "$out/prepare.options" "$options" -o
if [ -f "$raw" ]; then
  # The marker names the archive it came from: another archive is extracted afresh.
  if [ "$(cat "$out/tmp/.extracted" 2>/dev/null)" != "$input" ]; then
    rm -rf "$out/tmp/.extracted" "$out/tmp/de-en"
    tar -xzf "$raw" -C "$out/tmp" || die "cannot extract $raw (not the de-en.tgz archive?)"
    echo "$input" > "$out/tmp/.extracted"
  fi
  orig=$out/tmp/de-en
  [ -d "$orig" ] || die "$raw has no de-en/ directory (not the de-en.tgz archive?)"
  check_inputs
fi
echo "$options" > "$out/prepare.options"
# A failed size check means the input is wrong: forget the options and every step made from
# it, so that a re-run with a corrected input redoes them instead of refusing or reusing them.
fail_check() {
  rm -f "$out/prepare.options" "$out/tmp/.extracted" "$out/tmp/.train" "$out/tmp/.test" \
    "$out/code" "$out/bpe/.done" "$out/bin/.done"
  die "$@"
}

# 2. Training text: drop the XML header lines, tokenise, clean, lowercase. The untokenised
#    lines of the pairs that clean keeps give sacrebleu's validation references (raw/valid;
#    an OUT made before raw/ existed lacks them, so the step is redone).
if [ ! -f "$out/tmp/.train" ] || [ ! -f "$out/raw/valid.$tgt" ]; then
  echo "[prepare-iwslt14] tokenising the training data"
  for l in $src $tgt; do
    grep -v -e '<url>' -e '<talkid>' -e '<keywords>' "$orig/train.tags.de-en.$l" \
      | sed -e 's/<title>//g' -e 's/<\/title>//g' -e 's/<description>//g' -e 's/<\/description>//g' \
      > "$out/tmp/train.tags.raw.$l"
    "${tools[@]}" tokenize --lang "$l" --workers 2 < "$out/tmp/train.tags.raw.$l" > "$out/tmp/train.tags.tok.$l"
    # raw/valid picks lines by number, so tokenising must keep them one to one.
    [ "$(count "$out/tmp/train.tags.raw.$l")" -eq "$(count "$out/tmp/train.tags.tok.$l")" ] \
      || die "tokenising $orig/train.tags.de-en.$l changed its number of lines (a carriage return inside a line?)"
  done
  "${tools[@]}" clean --ratio 1.5 --min 1 --max 175 --kept-lines "$out/tmp/train.tags.kept" \
    "$out/tmp/train.tags.tok.$src" "$out/tmp/train.tags.tok.$tgt" \
    "$out/tmp/train.tags.clean.$src" "$out/tmp/train.tags.clean.$tgt"
  for l in $src $tgt; do
    "$python" -c 'import sys; sys.stdout.writelines(l.lower() for l in sys.stdin)' \
      < "$out/tmp/train.tags.clean.$l" > "$out/tmp/train.tags.$l"
    awk 'NR % 23 == 0' "$out/tmp/train.tags.$l" > "$out/tok/valid.$l"
    awk 'NR % 23 != 0' "$out/tmp/train.tags.$l" > "$out/tok/train.$l"
    # Every 23rd kept pair, untokenised: line for line tok/valid.
    awk 'NR == FNR { keep[$1]; next } (FNR in keep) && (++n % 23 == 0)' \
      "$out/tmp/train.tags.kept" "$out/tmp/train.tags.raw.$l" > "$out/raw/valid.$l"
  done
  touch "$out/tmp/.train"
fi

# 3. Test text: the <seg> contents of the five sets (raw/, for sacrebleu), then tokenised and lowercased.
if [ ! -f "$out/tmp/.test" ] || [ ! -f "$out/raw/test.$tgt" ]; then
  echo "[prepare-iwslt14] tokenising the test sets"
  for l in $src $tgt; do
    for t in "${tests[@]}"; do
      "${tools[@]}" segments < "$orig/$t.de-en.$l.xml"
    done > "$out/raw/test.$l"
    "${tools[@]}" tokenize --lang "$l" --lowercase < "$out/raw/test.$l" > "$out/tok/test.$l"
  done
  touch "$out/tmp/.test"
fi

for split in train valid test; do
  [ "$(count "$out/tok/$split.$src")" -eq "$(count "$out/tok/$split.$tgt")" ] \
    || fail_check "$split: $(count "$out/tok/$split.$src") German but $(count "$out/tok/$split.$tgt") English lines"
done
for f in valid.$src valid.$tgt test.$src test.$tgt; do  # the sacrebleu references, line for line
  [ "$(count "$out/raw/$f")" -eq "$(count "$out/tok/$f")" ] \
    || fail_check "raw/$f has $(count "$out/raw/$f") lines but tok/$f $(count "$out/tok/$f") (a carriage return inside a line?)"
done
if [ "$count_check" = 1 ]; then
  # Tokenisation may differ from tokenizer.perl on a handful of lines, which clean-corpus-n then
  # keeps or drops: the training split gets 0.5 % of slack, the test sets (not cleaned) none.
  n=$(count "$out/tok/test.$tgt")
  [ "$n" -eq 6750 ] || fail_check "test has $n pairs, expected 6,750 (truncated or another release? --skip-count-check)"
  n=$(( $(count "$out/tok/train.$tgt") + $(count "$out/tok/valid.$tgt") ))
  [ "$n" -ge 166684 ] && [ "$n" -le 168360 ] \
    || fail_check "train + valid have $n pairs, expected about 167,522 (truncated or another release? --skip-count-check)"
fi

# 4. Joint BPE learnt on the training data of both languages.
if [ ! -f "$out/code" ]; then
  echo "[prepare-iwslt14] learning BPE ($bpe_tokens merges)"
  cat "$out/tok/train.$src" "$out/tok/train.$tgt" | subword-nmt learn-bpe -s "$bpe_tokens" > "$out/code.part"
  mv "$out/code.part" "$out/code"
fi
mkdir -p "$out/bpe"
if [ ! -f "$out/bpe/.done" ]; then
  for l in $src $tgt; do
    for split in train valid test; do
      subword-nmt apply-bpe -c "$out/code" < "$out/tok/$split.$l" > "$out/bpe/$split.$l"
    done
  done
  touch "$out/bpe/.done"
fi

# 5. Binarise as fairseq's IWSLT'14 example does (a dictionary per language).
if [ ! -f "$out/bin/.done" ]; then
  echo "[prepare-iwslt14] fairseq-preprocess"
  rm -rf "${out:?}/bin"
  fairseq-preprocess --source-lang $src --target-lang $tgt --trainpref "$out/bpe/train" \
    --validpref "$out/bpe/valid" --testpref "$out/bpe/test" --destdir "$out/bin" --workers 2 \
    > "$out/preprocess.log" 2>&1 \
    || { tail -n 20 "$out/preprocess.log" >&2; die "fairseq-preprocess failed (log: $out/preprocess.log)"; }
  touch "$out/bin/.done"
fi
echo "[prepare-iwslt14] ready: $out/bin (train $(count "$out/tok/train.$tgt"), valid $(count "$out/tok/valid.$tgt"), test $(count "$out/tok/test.$tgt") pairs)"
