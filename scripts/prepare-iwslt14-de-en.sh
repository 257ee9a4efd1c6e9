#!/usr/bin/env bash
# IWSLT'14 German-English as fairseq's examples/translation/prepare-iwslt14.sh prepares it.
set -euo pipefail

usage() {
  cat <<EOF
Usage: $(basename "$0") -r ARCHIVE_OR_DIR [options]

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
                       Hugging Face), or its extracted de-en/ directory
  -o, --out DIR        output directory (default: data/iwslt14.de-en)
  --bpe-tokens N       BPE merges (default: 10000, as fairseq)
  --skip-count-check   do not compare the split sizes with fairseq's (for other releases)
  -h, --help           this text

Outputs OUT/bin (for fairseq-train), OUT/tok/test.{de,en} (tokenised, lowercased: the
references of the literature's tokenised BLEU) and OUT/code (the BPE codes).
Expected split sizes (fairseq's): train 160,239, valid 7,283, test 6,750 pairs.
Re-running skips finished steps.
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
[ -n "$raw" ] || die "give the IWSLT'14 archive or directory with -r (the original host is gone; see --help)"
[[ $bpe_tokens =~ ^[1-9][0-9]*$ ]] || die "--bpe-tokens must be a positive integer, got '$bpe_tokens'"
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python}
tools=("$python" "$here/text_tools.py")
src=de tgt=en
mkdir -p "$out/tmp" "$out/tok"

# 1. The original files.
if [ -f "$raw" ]; then
  if [ ! -f "$out/tmp/.extracted" ]; then
    tar -xzf "$raw" -C "$out/tmp" || die "cannot extract $raw (not the de-en.tgz archive?)"
    touch "$out/tmp/.extracted"
  fi
  orig=$out/tmp/de-en
else
  orig=$raw
fi
[ -d "$orig" ] || die "$orig is neither the de-en.tgz archive nor its extracted de-en/ directory"
tests=(IWSLT14.TED.dev2010 IWSLT14.TEDX.dev2012 IWSLT14.TED.tst2010 IWSLT14.TED.tst2011 IWSLT14.TED.tst2012)
for l in $src $tgt; do
  [ -s "$orig/train.tags.de-en.$l" ] || die "missing $orig/train.tags.de-en.$l"
  for t in "${tests[@]}"; do
    [ -s "$orig/$t.de-en.$l.xml" ] || die "missing $orig/$t.de-en.$l.xml"
  done
done

# 2. Training text: drop the XML header lines, tokenise, clean, lowercase.
if [ ! -f "$out/tmp/.train" ]; then
  echo "[prepare-iwslt14] tokenising the training data"
  for l in $src $tgt; do
    grep -v -e '<url>' -e '<talkid>' -e '<keywords>' "$orig/train.tags.de-en.$l" \
      | sed -e 's/<title>//g' -e 's/<\/title>//g' -e 's/<description>//g' -e 's/<\/description>//g' \
      | "${tools[@]}" tokenize --lang $l --workers 2 > "$out/tmp/train.tags.tok.$l"
  done
  "${tools[@]}" clean --ratio 1.5 --min 1 --max 175 "$out/tmp/train.tags.tok.$src" "$out/tmp/train.tags.tok.$tgt" \
    "$out/tmp/train.tags.clean.$src" "$out/tmp/train.tags.clean.$tgt"
  for l in $src $tgt; do
    "$python" -c 'import sys; sys.stdout.writelines(l.lower() for l in sys.stdin)' \
      < "$out/tmp/train.tags.clean.$l" > "$out/tmp/train.tags.$l"
    awk 'NR % 23 == 0' "$out/tmp/train.tags.$l" > "$out/tok/valid.$l"
    awk 'NR % 23 != 0' "$out/tmp/train.tags.$l" > "$out/tok/train.$l"
  done
  touch "$out/tmp/.train"
fi

# 3. Test text: the <seg> contents of the five sets, tokenised and lowercased.
if [ ! -f "$out/tmp/.test" ]; then
  echo "[prepare-iwslt14] tokenising the test sets"
  for l in $src $tgt; do
    for t in "${tests[@]}"; do
      "${tools[@]}" segments < "$orig/$t.de-en.$l.xml"
    done | "${tools[@]}" tokenize --lang $l --lowercase > "$out/tok/test.$l"
  done
  touch "$out/tmp/.test"
fi

count() { wc -l < "$1" | tr -d ' '; }
for split in train valid test; do
  [ "$(count "$out/tok/$split.$src")" -eq "$(count "$out/tok/$split.$tgt")" ] \
    || die "$split: $(count "$out/tok/$split.$src") German but $(count "$out/tok/$split.$tgt") English lines"
done
if [ "$count_check" = 1 ]; then
  # Tokenisation may differ from tokenizer.perl on a handful of lines, which clean-corpus-n then
  # keeps or drops: the training split gets 0.5 % of slack, the test sets (not cleaned) none.
  n=$(count "$out/tok/test.$tgt")
  [ "$n" -eq 6750 ] || die "test has $n pairs, expected 6,750 (truncated or another release? --skip-count-check)"
  n=$(( $(count "$out/tok/train.$tgt") + $(count "$out/tok/valid.$tgt") ))
  [ "$n" -ge 166684 ] && [ "$n" -le 168360 ] \
    || die "train + valid have $n pairs, expected about 167,522 (truncated or another release? --skip-count-check)"
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
  rm -rf "$out/bin"
  fairseq-preprocess --source-lang $src --target-lang $tgt --trainpref "$out/bpe/train" \
    --validpref "$out/bpe/valid" --testpref "$out/bpe/test" --destdir "$out/bin" --workers 2 \
    > "$out/preprocess.log" 2>&1 \
    || { tail -n 20 "$out/preprocess.log" >&2; die "fairseq-preprocess failed (log: $out/preprocess.log)"; }
  touch "$out/bin/.done"
fi
echo "[prepare-iwslt14] ready: $out/bin (train $(count "$out/tok/train.$tgt"), valid $(count "$out/tok/valid.$tgt"), test $(count "$out/tok/test.$tgt") pairs)"
