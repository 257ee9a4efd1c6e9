#!/usr/bin/env bash
# Prepare Multi30k (task 1) for fairseq: joint sentencepiece model, then fairseq-preprocess.
set -euo pipefail

usage() {
  cat <<EOF
Usage: $(basename "$0") [options]

Prepares Multi30k task 1 (Elliott et al., 2016) for fairseq translation: the raw
train / val / test_2016_flickr splits, a joint sentencepiece (unigram) model trained
on both sides of the training data, and fairseq-preprocess with a joined dictionary.

Options:
  -s, --src LANG       source language: de, en, fr or cs (default: de)
  -t, --tgt LANG       target language (default: en)
  -r, --raw-dir DIR    directory with the dataset's raw files, {train,val,test_2016_flickr}.LANG.gz
                       (default: \$MULTI30K_DIR; when unset, they are downloaded into OUT/download
                       from \$MULTI30K_URL/NAME, the base URL defaulting to data/task1/raw/ of
                       https://github.com/multi30k/dataset: MULTI30K_URL names a mirror)
  -o, --out DIR        output directory (default: data/multi30k.SRC-TGT)
  --vocab-size N       joint sentencepiece vocabulary size (default: 8000)
  --train-lines N      keep only the first N training pairs (quick runs and tests)
  --eval-lines N       keep only the first N validation and test pairs
  --lm LANG            also binarise one side (de, en, fr or cs, one of the pair) for
                       language modelling into OUT/lm-LANG/bin (--only-source, same pieces)
  -h, --help           this text

Outputs in OUT: raw/{train,valid,test}.LANG (the text the references come from),
spm.model, and bin/ (pass it to fairseq-train). Re-running skips finished steps;
a different set of options needs a different --out.
EOF
}

src=de tgt=en raw_dir=${MULTI30K_DIR:-} out="" vocab_size=8000 train_lines="" eval_lines="" lm=""
while [ $# -gt 0 ]; do
  case "$1" in
    -s|--src) src=$2; shift 2 ;;
    -t|--tgt) tgt=$2; shift 2 ;;
    -r|--raw-dir) raw_dir=$2; shift 2 ;;
    -o|--out) out=$2; shift 2 ;;
    --vocab-size) vocab_size=$2; shift 2 ;;
    --train-lines) train_lines=$2; shift 2 ;;
    --eval-lines) eval_lines=$2; shift 2 ;;
    --lm) lm=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "prepare-multi30k: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done

die() { echo "prepare-multi30k: $*" >&2; exit 1; }
is_count() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }
# First N lines of stdin (all when N is empty); reads to the end, so no SIGPIPE under pipefail.
take() { if [ -n "$1" ]; then awk -v n="$1" 'NR <= n'; else cat; fi; }
for lang in "$src" "$tgt"; do
  case "$lang" in de|en|fr|cs) ;; *) die "unsupported language '$lang': choose de, en, fr or cs" ;; esac
done
[ "$src" != "$tgt" ] || die "source and target are both '$src'"
[ -z "$lm" ] || [ "$lm" = "$src" ] || [ "$lm" = "$tgt" ] || die "--lm must be one side of the pair ($src or $tgt), got '$lm'"
is_count "$vocab_size" || die "--vocab-size must be a positive integer, got '$vocab_size'"
[ -z "$train_lines" ] || is_count "$train_lines" || die "--train-lines must be a positive integer, got '$train_lines'"
[ -z "$eval_lines" ] || is_count "$eval_lines" || die "--eval-lines must be a positive integer, got '$eval_lines'"
out=${out:-data/multi30k.$src-$tgt}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/prepare-lib.sh
. "$here/prepare-lib.sh"
python=${PYTHON:-python}

mkdir -p "$out"

# 1. Raw files: given directory, or download.
declare -A expected=([train]=29000 [val]=1014 [test_2016_flickr]=1000)
# gzip_lines N FILE: FILE is a gzip file of N lines; else says what it is instead.
gzip_lines() {
  local n
  n=$(gzip -cd "$2" | wc -l) || { echo "is not a readable gzip file"; return 1; }
  [ "$n" -eq "$1" ] || { echo "has $n lines, expected $1"; return 1; }
}
if [ -z "$raw_dir" ]; then
  raw_dir=$out/download
  mkdir -p "$raw_dir"
  url=${MULTI30K_URL:-https://github.com/multi30k/dataset/raw/master/data/task1/raw}
  for split in train val test_2016_flickr; do
    for lang in "$src" "$tgt"; do
      download "$url/$split.$lang.gz" "$raw_dir/$split.$lang.gz" \
        "download data/task1/raw/ of https://github.com/multi30k/dataset by hand and pass --raw-dir (or set MULTI30K_DIR), or set MULTI30K_URL to a mirror" \
        gzip_lines "${expected[$split]}"
    done
  done
fi
[ -d "$raw_dir" ] || die "raw directory '$raw_dir' does not exist"
inputs=()
for split in train val test_2016_flickr; do
  for lang in "$src" "$tgt"; do
    f=$raw_dir/$split.$lang.gz
    [ -f "$f" ] || die "missing $f (expected the dataset's data/task1/raw/$split.$lang.gz)"
    inputs+=("$f")
  done
done
# The options and input that OUT is made from: another raw directory (or a replaced file) is refused.
settings="src=$src tgt=$tgt vocab_size=$vocab_size train_lines=$train_lines eval_lines=$eval_lines"
options="$settings
$(input_identity "${inputs[@]}")"
refuse_other_options "$out/prepare.options" "$options" --out
for split in train val test_2016_flickr; do
  for lang in "$src" "$tgt"; do
    f=$raw_dir/$split.$lang.gz
    problem=$(gzip_lines "${expected[$split]}" "$f") || die "$f $problem (truncated or wrong file?)"
  done
done
# Recorded once the input is known good, so a failed first try does not pin the options.
echo "$options" > "$out/prepare.options"

# 2. Plain text, optionally sliced. fairseq's split names: train, valid, test.
mkdir -p "$out/raw"
if [ ! -f "$out/raw/.done" ]; then
  echo "[prepare-multi30k] extracting $src-$tgt text"
  for lang in "$src" "$tgt"; do
    gzip -cd "$raw_dir/train.$lang.gz" | take "$train_lines" > "$out/raw/train.$lang"
    for pair in val:valid test_2016_flickr:test; do
      gzip -cd "$raw_dir/${pair%%:*}.$lang.gz" | take "$eval_lines" > "$out/raw/${pair##*:}.$lang"
    done
  done
  touch "$out/raw/.done"
fi

# 3. Joint sentencepiece model, then encode every split.
if [ ! -f "$out/spm.model" ]; then
  echo "[prepare-multi30k] training a joint sentencepiece model ($vocab_size pieces)"
  "$python" -m skd_experiments.spm train --model-prefix "$out/spm" --vocab-size "$vocab_size" \
    "$out/raw/train.$src" "$out/raw/train.$tgt"
fi
mkdir -p "$out/spm"
if [ ! -f "$out/spm/.done" ]; then
  echo "[prepare-multi30k] applying sentencepiece"
  for split in train valid test; do
    for lang in "$src" "$tgt"; do
      "$python" -m skd_experiments.spm encode --model "$out/spm.model" < "$out/raw/$split.$lang" > "$out/spm/$split.$lang"
    done
  done
  touch "$out/spm/.done"
fi

# 4. Binarise with one dictionary for both sides (so embeddings can be shared).
if [ ! -f "$out/bin/.done" ]; then
  echo "[prepare-multi30k] fairseq-preprocess"
  rm -rf "${out:?}/bin"
  fairseq-preprocess --source-lang "$src" --target-lang "$tgt" \
    --trainpref "$out/spm/train" --validpref "$out/spm/valid" --testpref "$out/spm/test" \
    --destdir "$out/bin" --joined-dictionary --workers 2 > "$out/preprocess.log" 2>&1 \
    || { tail -n 20 "$out/preprocess.log" >&2; die "fairseq-preprocess failed (log: $out/preprocess.log)"; }
  touch "$out/bin/.done"
fi
echo "[prepare-multi30k] ready: $out/bin ($(wc -l < "$out/bin/dict.$tgt.txt") dictionary entries)"

# 5. Optionally one side alone, for language modelling (its own dictionary of the same pieces).
if [ -n "$lm" ] && [ ! -f "$out/lm-$lm/bin/.done" ]; then
  echo "[prepare-multi30k] fairseq-preprocess --only-source ($lm, language modelling)"
  rm -rf "$out/lm-$lm/bin"
  mkdir -p "$out/lm-$lm"
  fairseq-preprocess --only-source --trainpref "$out/spm/train.$lm" --validpref "$out/spm/valid.$lm" \
    --testpref "$out/spm/test.$lm" --destdir "$out/lm-$lm/bin" --workers 2 > "$out/lm-$lm/preprocess.log" 2>&1 \
    || { tail -n 20 "$out/lm-$lm/preprocess.log" >&2; die "fairseq-preprocess failed (log: $out/lm-$lm/preprocess.log)"; }
  touch "$out/lm-$lm/bin/.done"
fi
[ -z "$lm" ] || echo "[prepare-multi30k] ready: $out/lm-$lm/bin (language modelling, $lm)"
