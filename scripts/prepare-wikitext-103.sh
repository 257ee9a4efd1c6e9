#!/usr/bin/env bash
# WikiText-103 as fairseq's examples/language_model recipe prepares it.
set -euo pipefail

usage() {
  cat <<EOF2
Usage: $(basename "$0") -r ZIP_OR_DIR [options]

Checks WikiText-103 (Merity et al., 2016; word level, v1) and binarises it with
fairseq-preprocess --only-source, as fairseq's language-model example does.

Options:
  -r, --raw PATH       wikitext-103-v1.zip (once at https://s3.amazonaws.com/research.metamind.io/
                       wikitext/wikitext-103-v1.zip; now also https://huggingface.co/datasets/
                       Salesforce/wikitext, config wikitext-103-v1) or its extracted wikitext-103/
                       directory holding wiki.{train,valid,test}.tokens
  -o, --out DIR        output directory (default: data/wikitext-103)
  --skip-count-check   do not compare the line counts with the release's
  -h, --help           this text

Expected line counts: wiki.train.tokens 1,801,350, wiki.valid.tokens 3,760,
wiki.test.tokens 4,358. Outputs OUT/bin. Re-running skips finished steps.
EOF2
}

raw="" out=data/wikitext-103 count_check=1
while [ $# -gt 0 ]; do
  case "$1" in
    -r|--raw) raw=$2; shift 2 ;;
    -o|--out) out=$2; shift 2 ;;
    --skip-count-check) count_check=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "prepare-wikitext-103: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
die() { echo "prepare-wikitext-103: $*" >&2; exit 1; }
[ -n "$raw" ] || die "give wikitext-103-v1.zip or its extracted directory with -r (see --help)"
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
if [ -f "$raw" ]; then
  if [ ! -f "$out/.extracted" ]; then
    python -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$raw" "$out" \
      || die "cannot extract $raw (not the wikitext-103-v1.zip archive?)"
    touch "$out/.extracted"
  fi
  dir=$out/wikitext-103
else
  dir=$raw
fi
[ -d "$dir" ] || die "$dir is neither wikitext-103-v1.zip nor its extracted directory"
declare -A expected=([train]=1801350 [valid]=3760 [test]=4358)
for split in train valid test; do
  f=$dir/wiki.$split.tokens
  [ -s "$f" ] || die "missing or empty $f"
  n=$(wc -l < "$f" | tr -d ' ')
  if [ "$count_check" = 1 ] && [ "$n" -ne "${expected[$split]}" ]; then
    die "$f has $n lines, expected ${expected[$split]} (truncated or another release? --skip-count-check)"
  fi
done
bash "$here/prepare-wikitext.sh" -r "$dir" -o "$out"
