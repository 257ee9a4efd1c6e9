#!/usr/bin/env bash
# WMT'14 English-German as fairseq's examples/translation/prepare-wmt14en2de.sh prepares it.
set -euo pipefail

usage() {
  cat <<EOF
Usage: $(basename "$0") [-r DIR] [options]

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
                       (https://statmt.org/wmt14/); or with their extracted contents.
                       Without -r, the archives are downloaded from there (or all from
                       \$WMT14_URL_BASE, a mirror) into OUT/download; when that fails,
                       get them by hand and pass their directory with -r
  -o, --out DIR        output directory (default: data/wmt14.en-de)
  --bpe-tokens N       BPE merges (default: 40000, as fairseq)
  --workers N          tokenisation processes (default: 2)
  --skip-count-check   do not check the corpora's line counts (for other releases)
  -h, --help           this text

Outputs OUT/bin (for fairseq-train), OUT/tok/test.de (tokenised references, for the
literature's compound-split BLEU) and OUT/raw/test.de (the untokenised references, for
sacrebleu). Expected raw sizes: Europarl v7 1,920,209, Common Crawl 2,399,123, News
Commentary v12 270,769 pairs; newstest2014 3,003 sentences. Re-running skips finished
steps; other options or another input need another --out.
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
[[ $bpe_tokens =~ ^[1-9][0-9]*$ ]] || die "--bpe-tokens must be a positive integer, got '$bpe_tokens'"
[[ $workers =~ ^[1-9][0-9]*$ ]] || die "--workers must be a positive integer, got '$workers'"
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/prepare-lib.sh
. "$here/prepare-lib.sh"
python=${PYTHON:-python}
tools=("$python" -m skd_experiments.text_tools)
src=en tgt=de
orig=$out/orig
count() { wc -l < "$1" | tr -d ' '; }

# The recipe's archives, where fairseq's recipe downloads them, and the files each holds.
archives=(training-parallel-europarl-v7.tgz training-parallel-commoncrawl.tgz
          training-parallel-nc-v12.tgz test-full.tgz)
declare -A url=([training-parallel-europarl-v7.tgz]=https://statmt.org/wmt13/training-parallel-europarl-v7.tgz
                [training-parallel-commoncrawl.tgz]=https://statmt.org/wmt13/training-parallel-commoncrawl.tgz
                [training-parallel-nc-v12.tgz]=https://data.statmt.org/wmt17/translation-task/training-parallel-nc-v12.tgz
                [test-full.tgz]=https://statmt.org/wmt14/test-full.tgz)
corpora=(training/europarl-v7.de-en commoncrawl.de-en training/news-commentary-v12.de-en)
declare -A archive_of=([training/europarl-v7.de-en]=training-parallel-europarl-v7.tgz
                       [commoncrawl.de-en]=training-parallel-commoncrawl.tgz
                       [training/news-commentary-v12.de-en]=training-parallel-nc-v12.tgz)
declare -A files_of=([test-full.tgz]="test-full/newstest2014-deen-src.$src.sgm test-full/newstest2014-deen-ref.$tgt.sgm")
for corpus in "${corpora[@]}"; do files_of[${archive_of[$corpus]}]="$corpus.$src $corpus.$tgt"; done

# 0. No directory given: the recipe's downloads (WMT14_URL_BASE: one mirror for all four).
if [ -z "$raw_dir" ]; then
  raw_dir=$out/download
  mkdir -p "$raw_dir"
  for archive in "${archives[@]}"; do
    [ -s "$raw_dir/$archive" ] && continue
    from=${WMT14_URL_BASE:+$WMT14_URL_BASE/$archive}
    from=${from:-${url[$archive]}}
    download "$from" "$raw_dir/$archive" "get the recipe's archives by hand (see --help) and pass their directory with -r"
  done
fi
[ -d "$raw_dir" ] || die "raw directory '$raw_dir' does not exist"
mkdir -p "$orig" "$out/tmp" "$out/tok" "$out/raw"

# 1. The options and input that OUT is made from (each archive, or the files it would hold);
#    count_check is part of it: a run with the checks must not take a build made without them.
options="bpe_tokens=$bpe_tokens
count_check=$count_check"
for archive in "${archives[@]}"; do
  if [ -f "$raw_dir/$archive" ]; then
    options+=$'\n'$(input_identity "$raw_dir/$archive")
  else
    # shellcheck disable=SC2086  # the archive's files, split on spaces (paths without spaces)
    options+=$'\n'$(cd "$raw_dir" && input_identity ${files_of[$archive]})
  fi
done
refuse_other_options "$out/prepare.options" "$options" -o

# Extract the archives that are there; each marker names the archive it came from, so a
# replaced archive is extracted afresh. Then every file the recipe reads must exist.
for archive in "${archives[@]}"; do
  [ -f "$raw_dir/$archive" ] || continue
  stamp=$(input_identity "$raw_dir/$archive")
  if [ "$(cat "$orig/.$archive.done" 2>/dev/null)" != "$stamp" ]; then
    echo "[prepare-wmt14] extracting $archive"
    rm -f "$orig/.$archive.done"
    tar -xzf "$raw_dir/$archive" -C "$orig" || die "cannot extract $raw_dir/$archive"
    echo "$stamp" > "$orig/.$archive.done"
  fi
done
find_file() {  # the recipe's relative path, in OUT/orig (extracted here) or in the raw directory
  if [ -f "$orig/$1" ]; then echo "$orig/$1"; elif [ -f "$raw_dir/$1" ]; then echo "$raw_dir/$1"
  else die "missing $1 (extract the recipe's archives into $raw_dir, or put the archives there)"; fi
}
# A failed size check means that archive (or its files) is wrong: forget its extraction (marker
# and files, which find_file would prefer), so that a re-run takes a corrected one.
fail_check() {
  local archive=$1 f
  shift
  rm -f "$orig/.$archive.done"
  for f in ${files_of[$archive]}; do rm -f "$orig/$f"; done
  die "$@"
}
declare -A expected=([training/europarl-v7.de-en]=1920209 [commoncrawl.de-en]=2399123
                     [training/news-commentary-v12.de-en]=270769)
for corpus in "${corpora[@]}"; do
  a=$(find_file "$corpus.$src"); b=$(find_file "$corpus.$tgt")
  [ "$(count "$a")" -eq "$(count "$b")" ] \
    || fail_check "${archive_of[$corpus]}" "$corpus: $(count "$a") English but $(count "$b") German lines"
  if [ "$count_check" = 1 ] && [ "$(count "$a")" -ne "${expected[$corpus]}" ]; then
    fail_check "${archive_of[$corpus]}" \
      "$corpus has $(count "$a") lines, expected ${expected[$corpus]} (truncated or another release? --skip-count-check)"
  fi
done
test_src=$(find_file test-full/newstest2014-deen-src.$src.sgm)
test_ref=$(find_file test-full/newstest2014-deen-ref.$tgt.sgm)
n_src=$("${tools[@]}" segments < "$test_src" | wc -l)
n_ref=$("${tools[@]}" segments < "$test_ref" | wc -l)
[ "$n_src" -eq "$n_ref" ] || fail_check test-full.tgz "newstest2014: $n_src source but $n_ref reference sentences"
if [ "$count_check" = 1 ] && [ "$n_ref" -ne 3003 ]; then
  fail_check test-full.tgz "newstest2014 has $n_ref sentences, expected 3,003 (--skip-count-check)"
fi
# Recorded once the input is known good, so a failed first try does not pin it.
echo "$options" > "$out/prepare.options"

# 2. Training text: normalise punctuation, drop non-printing characters, tokenise (-a).
if [ ! -f "$out/tmp/.train" ]; then
  for l in $src $tgt; do
    echo "[prepare-wmt14] tokenising the $l training data"
    for corpus in "${corpora[@]}"; do cat "$(find_file "$corpus.$l")"; done \
      | "${tools[@]}" tokenize --lang "$l" --normalize-punct --aggressive-dash --workers "$workers" \
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
    "${tools[@]}" tokenize --lang "$l" --aggressive-dash < "$out/raw/test.$l" > "$out/tok/test.$l"
  done
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
  rm -rf "${out:?}/bin"
  fairseq-preprocess --source-lang $src --target-lang $tgt --trainpref "$out/bpe/train" \
    --validpref "$out/bpe/valid" --testpref "$out/bpe/test" --destdir "$out/bin" \
    --joined-dictionary --workers "$workers" > "$out/preprocess.log" 2>&1 \
    || { tail -n 20 "$out/preprocess.log" >&2; die "fairseq-preprocess failed (log: $out/preprocess.log)"; }
  touch "$out/bin/.done"
fi
echo "[prepare-wmt14] ready: $out/bin (train $(count "$out/bpe/train.$tgt"), valid $(count "$out/bpe/valid.$tgt"), test $(count "$out/bpe/test.$tgt") pairs)"
