#!/usr/bin/env bash
# A small hyper-parameter sweep: one run per variant, scored on the validation set only.
set -euo pipefail

usage() {
  cat <<EOF
Usage: $(basename "$0") CONFIG --out DIR [--seed N] [--table FILE.md] --variant NAME="PRESET [flags]" [--variant ...]

Trains each variant (a criterion preset of configs/presets.sh plus fairseq flags, e.g.
--variant n-a0.2-r0.9="skd-neighbours --skd-alpha 0.2 --skd-gold-mass 0.9") with
scripts/train.sh into DIR/NAME, translates the validation split with the model CONFIG
scores (its AVERAGE_LAST, else checkpoint_best.pt), and writes the table DIR/sweep.md
(rows: variants; valid BLEU, chrF and perplexity; skd_gold_q and skd_tau in the first
and last epoch). The test split is never touched, so the choice made from this table
does not peek at test scores. Resumable: finished runs and evaluations are skipped.

  --seed N        the seed of every run (default 1)
  --table FILE    write the table there instead of DIR/sweep.md, and archive what it was
                  computed from (result files, train.json, the runs' per-epoch records,
                  hypotheses) into FILE's name without .md plus -runs/ (skd-fairseq-archive-runs)
EOF
}

[ $# -ge 1 ] || { usage >&2; exit 2; }
case "$1" in -h|--help) usage; exit 0 ;; esac
config=$(realpath -m -- "$1"); shift
out="" seed=1 variants=() table=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$(realpath -m -- "$2"); shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --table) table=$(realpath -m -- "$2"); shift 2 ;;
    --variant) variants+=("$2"); shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "sweep: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
die() { echo "sweep: $*" >&2; exit 1; }
[ -n "$out" ] || die "give --out DIR"
[ ${#variants[@]} -gt 0 ] || die "give at least one --variant NAME=\"PRESET [flags]\""
repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/device.sh
. "$repo/scripts/device.sh"

# Every variant is checked before the first one trains.
listed=$(bash "$repo/scripts/train.sh" "$config" --criterion-preset --list) || die "could not list the presets of $config"
for spec in "${variants[@]}"; do
  name=${spec%%=*}
  [ -n "$name" ] && [ "$name" != "$spec" ] || die "--variant '$spec': expected NAME=\"PRESET [flags]\""
  read -r -a words <<< "${spec#*=}"
  [ ${#words[@]} -ge 1 ] || die "--variant '$spec' names no preset"
  grep -q "^${words[0]}\( teacher\)\?$" <<< "$listed" \
    || die "--variant '$spec': unknown preset '${words[0]}' (one of: $(cut -d' ' -f1 <<< "$listed" | paste -sd' '))"
done
results=()
for spec in "${variants[@]}"; do
  name=${spec%%=*}
  read -r -a words <<< "${spec#*=}"
  run_dir=$out/$name
  if [ ! -f "$run_dir/result.valid.json" ]; then
    echo "=== [sweep] $name: ${words[*]} ==="
    bash "$repo/scripts/train.sh" "$config" --criterion-preset "${words[0]}" --seed "$seed" \
      --save-dir "$run_dir" --method "$name" "${words[@]:1}"
    bash "$repo/scripts/evaluate-translation.sh" "$config" --run-dir "$run_dir" --split valid
  fi
  results+=("$run_dir/result.valid.json")
done
{
  echo "# Sweep on the validation split"
  echo
  echo "\`bash scripts/sweep.sh $(realpath --relative-to="$repo" "$config") --seed $seed\` with the variants below, on"
  echo "$(date -u +%Y-%m-%d), commit $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown); one run per variant,"
  # shellcheck source=/dev/null
  echo "scored on the validation split only ($(. "$config"; [ "${AVERAGE_LAST:-1}" -gt 1 ] && echo "the average of the last ${AVERAGE_LAST} checkpoints" || echo "checkpoint_best.pt"))."
  echo
  python -m skd_experiments.make_tables "${results[@]}" --flags --training-metrics
} > "$out/sweep.md.part"
table=${table:-$out/sweep.md}
mkdir -p "$(dirname "$table")"
mv "$out/sweep.md.part" "$table"
if [ "$table" != "$out/sweep.md" ]; then
  rm -rf "${table%.md}-runs"
  python -m skd_experiments.archive_runs --out "${table%.md}-runs" "${results[@]}"
fi
cat "$table"
