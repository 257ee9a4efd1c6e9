#!/usr/bin/env bash
# WikiText-103 as fairseq's examples/language_model recipe prepares it.
set -euo pipefail

usage() {
  cat <<EOF2
Usage: $(basename "$0") [-r ZIP_OR_DIR] [options]

Checks WikiText-103 (Merity et al., 2016; word level, v1) and binarises it with
fairseq-preprocess --only-source, as fairseq's language-model example does.

Options:
  -r, --raw PATH       wikitext-103-v1.zip (once at https://s3.amazonaws.com/research.metamind.io/
                       wikitext/wikitext-103-v1.zip; now also https://huggingface.co/datasets/
                       Salesforce/wikitext, config wikitext-103-v1) or its extracted wikitext-103/
                       directory holding wiki.{train,valid,test}.tokens. Without -r, the zip is
                       downloaded from the first URL (or \$WIKITEXT103_URL) into OUT/download;
                       when that fails, get it by hand and pass -r
  -o, --out DIR        output directory (default: data/wikitext-103)
  --skip-count-check   do not compare the line counts with the release's
  -h, --help           this text

Expected line counts: wiki.train.tokens 1,801,350, wiki.valid.tokens 3,760,
wiki.test.tokens 4,358. Outputs OUT/bin. Re-running skips finished steps; another
input needs another --out.
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
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
# shellcheck source=scripts/prepare-lib.sh
. "$here/prepare-lib.sh"

# No zip given: the original download (its host may be gone; WIKITEXT103_URL points elsewhere).
if [ -z "$raw" ]; then
  url=${WIKITEXT103_URL:-https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-103-v1.zip}
  raw=$out/download/wikitext-103-v1.zip
  download "$url" "$raw" "get wikitext-103-v1.zip or its files by hand (see --help) and pass them with -r"
fi

splits=(train valid test)
check_files() {
  local split
  for split in "${splits[@]}"; do [ -s "$dir/wiki.$split.tokens" ] || die "missing or empty $dir/wiki.$split.tokens"; done
}
if [ -f "$raw" ]; then
  input=$(input_identity "$raw")
else
  dir=$raw
  [ -d "$dir" ] || die "$dir is neither wikitext-103-v1.zip nor its extracted directory"
  check_files
  input=$(input_identity "$dir"/wiki.{train,valid,test}.tokens)
fi
# The input OUT is made from, beside prepare-wikitext.sh's own OUT/prepare.options;
# count_check is part of it: a run with the checks must not take a build made without them.
options="count_check=$count_check
$input"
stamp=$out/prepare-wikitext-103.options
refuse_other_options "$stamp" "$options" -o
if [ -f "$raw" ]; then
  # The marker names the zip it came from: another zip is extracted afresh.
  if [ "$(cat "$out/.extracted" 2>/dev/null)" != "$input" ]; then
    rm -rf "$out/.extracted" "$out/wikitext-103"
    python -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$raw" "$out" \
      || die "cannot extract $raw (not the wikitext-103-v1.zip archive?)"
    echo "$input" > "$out/.extracted"
  fi
  dir=$out/wikitext-103
  [ -d "$dir" ] || die "$raw has no wikitext-103/ directory (not the wikitext-103-v1.zip archive?)"
  check_files
fi
declare -A expected=([train]=1801350 [valid]=3760 [test]=4358)
for split in "${splits[@]}"; do
  f=$dir/wiki.$split.tokens
  n=$(wc -l < "$f" | tr -d ' ')
  if [ "$count_check" = 1 ] && [ "$n" -ne "${expected[$split]}" ]; then
    # The input is wrong: forget its extraction, so that a re-run takes a corrected one.
    rm -f "$out/.extracted"
    die "$f has $n lines, expected ${expected[$split]} (truncated or another release? --skip-count-check)"
  fi
done
# Recorded once the input is known good, so a failed first try does not pin it.
echo "$options" > "$stamp"
bash "$here/prepare-wikitext.sh" -r "$dir" -o "$out"
