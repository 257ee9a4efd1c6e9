#!/usr/bin/env bash
# WMT'14 English-German as fairseq's examples/translation/prepare-wmt14en2de.sh prepares it.
set -euo pipefail

usage() {
  cat <<EOF
Usage: $(basename "$0") -r DIR [options]

Prepares WMT'14 en-de as fairseq's recipe (examples/translation/prepare-wmt14en2de.sh):
Europarl v7 + Common Crawl + News Commentary v12 for training, Moses punctuation
normalisation, non-printing-character removal and aggressive-hyphen tokenisation
(sacremoses), every 100th training pair as validation, newstest2014 (full) as test,
joint BPE with 40,000 merges (subword-nmt), clean-corpus-n (ratio 1.5, 1-250 tokens,
after BPE) on train and valid, and fairseq-preprocess with a joined dictionary (as
fairseq's scaling-NMT example, so that --share-all-embeddings works).

Options:
  -r, --raw-dir DIR    directory with the recipe's archives, as downloaded from statmt.org:
                       training-parallel-europarl-v7.tgz, training-parallel-commoncrawl.tgz
                       (https://statmt.org/wmt13/), training-parallel-nc-v12.tgz
                       (https://data.statmt.org/wmt17/translation-task/), test-full.tgz
                       (https://statmt.org/wmt14/); or with their extracted contents
  -o, --out DIR        output directory (default: data/wmt14.en-de)
  --bpe-tokens N       BPE merges (default: 40000, as fairseq)
  --workers N          tokenisation processes (default: 2)
  --skip-count-check   do not check the corpora's line counts (for other releases)
  -h, --help           this text

Outputs OUT/bin (for fairseq-train), OUT/tok/test.de (tokenised references, for the
literature's compound-split BLEU) and OUT/raw/test.de (the untokenised references, for
sacrebleu). Expected raw sizes: Europarl v7 1,920,209, Common Crawl 2,399,123, News
Commentary v12 270,769 pairs; newstest2014 3,003 sentences. Re-running skips finished steps.
EOF
}

raw_dir="" out=data/wmt14.en-de bpe_tokens=40000 workers=2 count_check=1
while [ $# -gt 0 ]; do
  case "$1" in
    -r|--raw-dir) raw_dir=$2; shift 2 ;;
    -o|--out) out=$2; shift 2 ;;
    --bpe-tokens) bpe_tokens=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --skip-count-check) count_check=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "prepare-wmt14: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
die() { echo "prepare-wmt14: $*" >&2; exit 1; }
[ -n "$raw_dir" ] || die "give the directory of the downloaded archives with -r (see --help)"
[ -d "$raw_dir" ] || die "raw directory '$raw_dir' does not exist"
[[ $bpe_tokens =~ ^[1-9][0-9]*$ ]] || die "--bpe-tokens must be a positive integer, got '$bpe_tokens'"
[[ $workers =~ ^[1-9][0-9]*$ ]] || die "--workers must be a positive integer, got '$workers'"
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python}
tools=("$python" "$here/text_tools.py")
src=en tgt=de
orig=$out/orig
mkdir -p "$orig" "$out/tmp" "$out/tok" "$out/raw"
count() { wc -l < "$1" | tr -d ' '; }

# 1. Extract the archives that are there; then every file the recipe reads must exist.
for archive in training-parallel-europarl-v7.tgz training-parallel-commoncrawl.tgz \
               training-parallel-nc-v12.tgz test-full.tgz; do
  if [ -f "$raw_dir/$archive" ] && [ ! -f "$orig/.$archive.done" ]; then
    echo "[prepare-wmt14] extracting $archive"
    tar -xzf "$raw_dir/$archive" -C "$orig" || die "cannot extract $raw_dir/$archive"
    touch "$orig/.$archive.done"
  fi
done
find_file() {  # the recipe's relative path, in OUT/orig (extracted here) or in the raw directory
  if [ -f "$orig/$1" ]; then echo "$orig/$1"; elif [ -f "$raw_dir/$1" ]; then echo "$raw_dir/$1"
  else die "missing $1 (extract the recipe's archives into $raw_dir, or put the archives there)"; fi
}
declare -A expected=([training/europarl-v7.de-en]=1920209 [commoncrawl.de-en]=2399123
                     [training/news-commentary-v12.de-en]=270769)
corpora=(training/europarl-v7.de-en commoncrawl.de-en training/news-commentary-v12.de-en)
for corpus in "${corpora[@]}"; do
  a=$(find_file "$corpus.$src"); b=$(find_file "$corpus.$tgt")
  [ "$(count "$a")" -eq "$(count "$b")" ] || die "$corpus: $(count "$a") English but $(count "$b") German lines"
  if [ "$count_check" = 1 ] && [ "$(count "$a")" -ne "${expected[$corpus]}" ]; then
    die "$corpus has $(count "$a") lines, expected ${expected[$corpus]} (truncated or another release? --skip-count-check)"
  fi
done
test_src=$(find_file test-full/newstest2014-deen-src.$src.sgm)
test_ref=$(find_file test-full/newstest2014-deen-ref.$tgt.sgm)

# 2. Training text: normalise punctuation, drop non-printing characters, tokenise (-a).
if [ ! -f "$out/tmp/.train" ]; then
  for l in $src $tgt; do
    echo "[prepare-wmt14] tokenising the $l training data"
    for corpus in "${corpora[@]}"; do cat "$(find_file "$corpus.$l")"; done \
      | "${tools[@]}" tokenize --lang $l --normalize-punct --aggressive-dash --workers "$workers" \
      > "$out/tmp/train.tags.tok.$l"
    awk 'NR % 100 == 0' "$out/tmp/train.tags.tok.$l" > "$out/tok/valid.$l"
    awk 'NR % 100 != 0' "$out/tmp/train.tags.tok.$l" > "$out/tok/train.$l"
  done
  touch "$out/tmp/.train"
fi

# 3. newstest2014: raw references for sacrebleu, tokenised text for the model and tokenised BLEU.
if [ ! -f "$out/tmp/.test" ]; then
  "${tools[@]}" segments < "$test_src" > "$out/raw/test.$src"
  "${tools[@]}" segments < "$test_ref" > "$out/raw/test.$tgt"
  for l in $src $tgt; do
    "${tools[@]}" tokenize --lang $l --aggressive-dash < "$out/raw/test.$l" > "$out/tok/test.$l"
  done
  [ "$(count "$out/raw/test.$src")" -eq "$(count "$out/raw/test.$tgt")" ] || die "newstest2014: source and reference differ in length"
  if [ "$count_check" = 1 ] && [ "$(count "$out/raw/test.$tgt")" -ne 3003 ]; then
    die "newstest2014 has $(count "$out/raw/test.$tgt") sentences, expected 3,003 (--skip-count-check)"
  fi
  touch "$out/tmp/.test"
fi

# 4. Joint BPE, applied to every split, then clean-corpus-n on train and valid (after BPE, as fairseq).
if [ ! -f "$out/code" ]; then
  echo "[prepare-wmt14] learning BPE ($bpe_tokens merges)"
  cat "$out/tok/train.$src" "$out/tok/train.$tgt" | subword-nmt learn-bpe -s "$bpe_tokens" > "$out/code.part"
  mv "$out/code.part" "$out/code"
fi
mkdir -p "$out/bpe"
if [ ! -f "$out/bpe/.done" ]; then
  echo "[prepare-wmt14] applying BPE"
  for l in $src $tgt; do
    for split in train valid test; do
      subword-nmt apply-bpe -c "$out/code" < "$out/tok/$split.$l" > "$out/tmp/bpe.$split.$l"
    done
  done
  for split in train valid; do
    "${tools[@]}" clean --ratio 1.5 --min 1 --max 250 "$out/tmp/bpe.$split.$src" "$out/tmp/bpe.$split.$tgt" \
      "$out/bpe/$split.$src" "$out/bpe/$split.$tgt"
  done
  cp "$out/tmp/bpe.test.$src" "$out/bpe/test.$src"
  cp "$out/tmp/bpe.test.$tgt" "$out/bpe/test.$tgt"
  touch "$out/bpe/.done"
fi

# 5. Binarise with one dictionary for both languages.
if [ ! -f "$out/bin/.done" ]; then
  echo "[prepare-wmt14] fairseq-preprocess"
  rm -rf "$out/bin"
  fairseq-preprocess --source-lang $src --target-lang $tgt --trainpref "$out/bpe/train" \
    --validpref "$out/bpe/valid" --testpref "$out/bpe/test" --destdir "$out/bin" \
    --joined-dictionary --workers "$workers" > "$out/preprocess.log" 2>&1 \
    || { tail -n 20 "$out/preprocess.log" >&2; die "fairseq-preprocess failed (log: $out/preprocess.log)"; }
  touch "$out/bin/.done"
fi
echo "[prepare-wmt14] ready: $out/bin (train $(count "$out/bpe/train.$tgt"), valid $(count "$out/bpe/valid.$tgt"), test $(count "$out/bpe/test.$tgt") pairs)"
