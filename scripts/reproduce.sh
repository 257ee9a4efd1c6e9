#!/usr/bin/env bash
# Run a whole results table end to end: prepare, train every row, evaluate, tabulate.
set -euo pipefail

usage() {
  cat <<EOF
Usage: $(basename "$0") TABLE [--seeds "1 2 3"] [--presets "A B C"] [--out DIR] [--results DIR]

TABLE is one of:
  multi30k      Multi30k de->en trained to convergence, configs/multi30k-de-en.sh: BLEU/chrF on
                test2016, validation perplexity and SKD's gold mass per row (CPU: about
                2 h a run with two runs side by side, one thread each)
  multi30k-lm   language model on Multi30k English, configs/multi30k-en-lm.sh, test perplexity
  iwslt14       IWSLT'14 de->en, configs/iwslt14-de-en.sh (set IWSLT14_RAW; GPU)
  wmt14         WMT'14 en->de, configs/wmt14-en-de.sh (set WMT14_RAW; several GPUs)
  wikitext103   WikiText-103 language model, configs/wikitext103.sh (set WIKITEXT103_RAW; GPU)
  wikitext2-adaptive
                a small adaptive-softmax LM on the WikiText-2 sample in ../shared/data
                (configs/wikitext2-sample-adaptive.sh; CPU)
  kd-multi30k   teacher-based KD on Multi30k de->en, converged: trains the teacher
                (configs/multi30k-de-en-teacher.sh) into OUT/teacher, stores its top 8
                per training target once (skd-fairseq-cache-teacher, OUT/teacher-cache;
                TEACHER_CACHE_TOPK in the config sets K), distils the training set with
                it (scripts/distill-sequence-level.sh, OUT/distilled), then the student
                rows (configs/multi30k-de-en.sh, the multi30k table's model): baseline,
                word-kd and skd-word-kd (from the cache), tie-kd (first pass from the
                cache), seq-kd (baseline on the distilled data), seq-word-kd (word-kd on
                it, from a cache of it); the teacher's own row first; every row scored
                with beam search and with greedy decoding; the teacher config's
                KD_TABLE_COMPARISONS tested and KD_TABLE_COST_FROM (a bench_train.py
                report) as the cost column

Every (preset, seed) run is trained with scripts/train.sh into OUT/PRESET/seedN and
evaluated on the test split; then skd-fairseq-tables writes RESULTS/TABLE.md (mean
+- std over seeds, paired bootstrap against the baseline: BLEU, or perplexity, and
against other rows where the config's TABLE_COMPARISONS names them) and
RESULTS/TABLE.png (validation curves), and skd-fairseq-archive-runs copies what they
were computed from (result files, train.json, hypotheses, validation records) into
RESULTS/TABLE-runs/, from which skd-fairseq-tables rebuilds them. Language-model rows are trained with
--label-smoothing 0, so the baseline is plain cross-entropy. Re-running resumes:
finished runs and evaluations are skipped, an interrupted run continues from its
checkpoint_last.pt.

  --seeds "..."    default "1 2 3"
  --presets "..."  default: the config's TABLE_PRESETS, else "baseline skd-neighbours
                   skd-predicted" (configs/presets.sh); for kd-multi30k the rows above
  --out DIR        default runs/TABLE
  --results DIR    default results
  --config FILE    use this config instead of the table's (same kind of task)
  --teacher-config FILE
                   kd-multi30k: the teacher's config (its DISTILL_ARGS go to the
                   sequence-level distillation)
EOF
}

[ $# -ge 1 ] || { usage >&2; exit 2; }
case "$1" in -h|--help) usage; exit 0 ;; esac
table=$1; shift
seeds="1 2 3" presets="" out="" results_dir=results config_override="" teacher_config_override=""
while [ $# -gt 0 ]; do
  case "$1" in
    --seeds) seeds=$2; shift 2 ;;
    --presets) presets=$2; shift 2 ;;
    --out) out=$(realpath -m -- "$2"); shift 2 ;;
    --results) results_dir=$(realpath -m -- "$2"); shift 2 ;;
    --config) config_override=$(realpath -m -- "$2"); shift 2 ;;
    --teacher-config) teacher_config_override=$(realpath -m -- "$2"); shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "reproduce: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
die() { echo "reproduce: $*" >&2; exit 1; }
case "$table" in
  multi30k) config=configs/multi30k-de-en.sh kind=translation name=multi30k-de-en ;;
  multi30k-lm) config=configs/multi30k-en-lm.sh kind=lm name=multi30k-en-lm ;;
  iwslt14) config=configs/iwslt14-de-en.sh kind=translation name=iwslt14-de-en ;;
  wmt14) config=configs/wmt14-en-de.sh kind=translation name=wmt14-en-de ;;
  wikitext103) config=configs/wikitext103.sh kind=lm name=wikitext103 ;;
  wikitext2-adaptive) config=configs/wikitext2-sample-adaptive.sh kind=lm name=wikitext2-sample-adaptive ;;
  kd-multi30k) config=configs/multi30k-de-en.sh kind=kd name=kd-multi30k-de-en
    teacher_config=configs/multi30k-de-en-teacher.sh ;;
  *) die "unknown table '$table' (see --help)" ;;
esac
for seed in $seeds; do [[ $seed =~ ^[0-9]+$ ]] || die "seeds must be non-negative integers, got '$seed'"; done

repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/device.sh
. "$repo/scripts/device.sh"
cd "$repo"
config=${config_override:-$config}
[ -f "$config" ] || die "config '$config' not found"
if [ "$kind" = kd ]; then
  teacher_config=${teacher_config_override:-$teacher_config}
  [ -f "$teacher_config" ] || die "teacher config '$teacher_config' not found"
fi
out=${out:-runs/$table}
# The archive is deleted and rewritten at the end: runs read from inside it would be lost.
archive=$(realpath -m -- "$results_dir/$name-runs")
case "$(realpath -m -- "$out")/" in
  "$archive"/*) die "--out '$out' lies in the archive '$archive', which this script rewrites at the end; to rebuild the table from archived runs, copy them out first (cp -r '$archive' DIR) and give --out DIR" ;;
esac
# shellcheck source=/dev/null
. "$config"
if [ "$kind" = kd ]; then
  presets=${presets:-baseline word-kd skd-word-kd tie-kd seq-kd seq-word-kd}
fi
presets=${presets:-${TABLE_PRESETS:-baseline skd-neighbours skd-predicted}}
# Everything a row needs is checked here, before the first run trains (a table takes hours).
case "$kind" in
  translation|kd) for var in REFERENCE_PREFIX GENERATE_ARGS; do
      declare -p "$var" > /dev/null 2>&1 || die "$config is not a translation config (no $var): give --config a config of the $table table's kind"
    done ;;
  lm) declare -p EVAL_LM_ARGS > /dev/null 2>&1 || die "$config is not a language-model config (no EVAL_LM_ARGS): give --config a config of the $table table's kind" ;;
esac
# The presets train.sh knows for this config (a config may redefine them), and the teacher-based ones.
listed=$(bash scripts/train.sh "$config" --criterion-preset --list) || die "could not list the presets of $config"
known=$(cut -d' ' -f1 <<< "$listed" | paste -sd' ') teacher_presets=" $(awk '$2 == "teacher" {print $1}' <<< "$listed" | paste -sd' ') "
[ "$kind" = kd ] && known+=" seq-kd seq-word-kd"
for preset in $presets; do
  [[ " $known " == *" $preset "* ]] || die "unknown preset '$preset' in --presets (one of: $known)"
  if [ "$kind" != kd ] && [[ "$teacher_presets" == *" $preset "* ]]; then
    die "preset '$preset' distils from a teacher: it is a row of 'reproduce.sh kd-multi30k', not of $table"
  fi
done
[[ " $presets " == *" baseline "* ]] || die "--presets \"$presets\" has no baseline: the table tests every row against it"
# Tests against other rows than the baseline (the config's TABLE_COMPARISONS="METHOD:REFERENCE ..."),
# for the pairs whose two rows this run of the table has.
compare=()
if [ "$kind" = kd ]; then  # the KD table's pairs and cost benchmark are its teacher config's
  # shellcheck source=/dev/null
  TABLE_COMPARISONS=$(. "$teacher_config"; echo "${KD_TABLE_COMPARISONS:-}")
  # shellcheck source=/dev/null
  TABLE_COST_FROM=$(. "$teacher_config"; echo "${KD_TABLE_COST_FROM:-}")
fi
for pair in ${TABLE_COMPARISONS:-}; do
  [[ "$pair" =~ ^[^:]+:[^:]+$ ]] || die "TABLE_COMPARISONS in $config: '$pair' is not METHOD:REFERENCE (e.g. skd-neighbours:ls-matched)"
  if [[ " $presets " == *" ${pair%%:*} "* && " $presets " == *" ${pair#*:} "* ]]; then
    compare+=(--compare "$pair")
  else
    echo "reproduce: the comparison $pair is left out of the table: it needs both rows, and --presets is \"$presets\"" >&2
  fi
done
[ -f "$DATA/.done" ] || bash "${PREPARE[@]}"

# Language-model rows train without label smoothing (plain cross-entropy baseline), unless the
# config's own presets settle it (TABLE_EXTRA_ARGS, e.g. () for the adaptive-softmax recipe).
extra=()
[ "$kind" = lm ] && extra=(--label-smoothing 0)
if declare -p TABLE_EXTRA_ARGS > /dev/null 2>&1; then extra=(${TABLE_EXTRA_ARGS[@]+"${TABLE_EXTRA_ARGS[@]}"}); fi
teacher_cache_for() {  # teacher_cache_for DATA_BIN DIR: the teacher's stored top K over DATA_BIN's train split
  if [ -f "$2/manifest.json" ] && ! python -m skd_experiments.teacher_cache_check "$2" "$teacher" 2> /dev/null; then
    echo "[reproduce] $2 was built from an earlier teacher: building it again"
    rm -rf "$2"
  fi
  [ -f "$2/manifest.json" ] || skd-fairseq-cache-teacher "$1" --user-dir "$repo/skd_fairseq" -s "$SRC" -t "$TGT" \
    --path "$teacher" --subset train --topk "${TEACHER_CACHE_TOPK:-8}" --out "$2" ${device[@]+"${device[@]}"}
}
if [ "$kind" = kd ]; then
  teacher_dir=$out/teacher
  if [ ! -f "$teacher_dir/result.test.json" ]; then
    echo "=== [reproduce $table] teacher -> $teacher_dir ==="
    bash scripts/train.sh "$teacher_config" --criterion-preset baseline --seed 1 --save-dir "$teacher_dir" --method teacher
    bash scripts/evaluate-translation.sh "$teacher_config" --run-dir "$teacher_dir" --split test
  fi
  [ -f "$teacher_dir/result.test.greedy.json" ] \
    || bash scripts/evaluate-translation.sh "$teacher_config" --run-dir "$teacher_dir" --split test --greedy
  # The teacher is the model its evaluation scored: the average of its last epochs where its config
  # averages them (written by evaluate-translation.sh), else its best checkpoint.
  # shellcheck source=/dev/null
  teacher_average=$(. "$teacher_config"; echo "${AVERAGE_LAST:-1}")
  teacher=$teacher_dir/checkpoint_best.pt
  [ "$teacher_average" -le 1 ] || teacher=$teacher_dir/checkpoint_avg$teacher_average.pt
  [ -f "$teacher" ] || die "the teacher's scored model $teacher is missing: run scripts/evaluate-translation.sh $teacher_config --run-dir $teacher_dir"
  # The word-level rows read the teacher from its cache (built once), not by running it every step.
  if [[ " $presets " == *" word-kd "* || " $presets " == *" skd-word-kd "* || " $presets " == *" tie-kd "* ]]; then
    teacher_cache_for "$DATA" "$out/teacher-cache"
  fi
  if [[ " $presets " == *" seq-"* ]]; then
    # shellcheck source=/dev/null
    # DISTILL_ARGS: set by the teacher's config, sourced in the subshell.
    # shellcheck disable=SC2153
    mapfile -t distill_args < <(. "$teacher_config"; printf '%s\n' ${DISTILL_ARGS[@]+"${DISTILL_ARGS[@]}"})
    bash scripts/distill-sequence-level.sh --data "$DATA" --teacher "$teacher" -s "$SRC" -t "$TGT" \
      --out "$out/distilled" ${distill_args[@]+"${distill_args[@]}"}
    [[ " $presets " != *" seq-word-kd "* ]] || teacher_cache_for "$out/distilled/bin" "$out/distilled-cache"
  fi
fi
result_files=() stale=()
# The KD table's first row: its teacher, beam and greedy (one seed, its own config).
[ "$kind" != kd ] || result_files=("$teacher_dir/result.test.json" "$teacher_dir/result.test.greedy.json")
for seed in $seeds; do
  for preset in $presets; do
    run_dir=$out/$preset/seed$seed
    result=$run_dir/result.test.json
    row=(--criterion-preset "$preset")
    if [ "$kind" = kd ]; then
      case "$preset" in  # sequence-level rows: a preset trained on the distilled data
        seq-kd) row=(--criterion-preset baseline --data "$out/distilled/bin") ;;
        seq-word-kd) row=(--criterion-preset word-kd --data "$out/distilled/bin" --teacher-cache "$out/distilled-cache") ;;
        word-kd|skd-word-kd|tie-kd) row+=(--teacher-cache "$out/teacher-cache") ;;
      esac
      row+=(--method "$preset" --teacher "$teacher")
    fi
    row+=(--seed "$seed" --save-dir "$run_dir" ${extra[@]+"${extra[@]}"})
    if [ -f "$result" ] && [ -f "$run_dir/.finished" ]; then
      # A finished run is reused as it is; say so when the config or its preset has changed since.
      status=0
      bash scripts/train.sh "$config" "${row[@]}" --check-finished || status=$?
      case "$status" in
        0) ;;
        3) stale+=("$preset/seed$seed")
           echo "reproduce: $run_dir finished with other settings than $config and its preset give now; the table uses it as it is (delete the directory to train it again)" >&2 ;;
        *) die "could not check the settings of $run_dir (train.sh --check-finished exited $status)" ;;
      esac
    fi
    if [ ! -f "$result" ]; then
      echo "=== [reproduce $table] $preset, seed $seed -> $run_dir ==="
      bash scripts/train.sh "$config" "${row[@]}"
      if [ "$kind" = lm ]; then
        bash scripts/evaluate-lm.sh "$config" --run-dir "$run_dir" --split test
      else
        bash scripts/evaluate-translation.sh "$config" --run-dir "$run_dir" --split test
      fi
    elif [ "$kind" = lm ] && ! grep -q '"scores"' "$result"; then
      # evaluated before evaluate-lm.sh kept per-sample scores, which the significance test needs
      echo "=== [reproduce $table] $preset, seed $seed: evaluating again for per-sample scores ==="
      bash scripts/evaluate-lm.sh "$config" --run-dir "$run_dir" --split test
    fi
    result_files+=("$result")
    if [ "$kind" = kd ]; then  # and greedy decoding, beside the beam (Kim & Rush's headline is greedy)
      [ -f "$run_dir/result.test.greedy.json" ] \
        || bash scripts/evaluate-translation.sh "$config" --run-dir "$run_dir" --split test --greedy
      result_files+=("$run_dir/result.test.greedy.json")
    fi
  done
done

mkdir -p "$results_dir"
significance=(--significance)
# A config may ask for more columns (TABLE_COLUMNS, e.g. --training-metrics). No cost column: the
# runs' wall times, beside other runs at various thread counts, measure the machine's load;
# benchmarks/bench_train.py measures the cost interleaved (docs/benchmarks.md).
if declare -p TABLE_COLUMNS > /dev/null 2>&1; then significance+=(${TABLE_COLUMNS[@]+"${TABLE_COLUMNS[@]}"}); fi
# The cost column from an interleaved bench_train.py report whose variants are the rows (its path,
# relative to the checkout, in TABLE_COST_FROM; the KD table's in its teacher config's KD_TABLE_COST_FROM).
if [ -n "${TABLE_COST_FROM:-}" ]; then
  [ -f "$TABLE_COST_FROM" ] || die "TABLE_COST_FROM: $TABLE_COST_FROM not found (a benchmarks/bench_train.py --json report)"
  significance+=(--cost-from "$TABLE_COST_FROM")
fi
significance+=(${compare[@]+"${compare[@]}"})
{
  echo "# $name: ${presets// /, }"
  echo
  trained_at=$(python -m skd_experiments.table_notes commits "${result_files[@]}")
  echo "Produced by \`bash scripts/reproduce.sh $table --seeds \"$seeds\" --presets \"$presets\"\` on"
  echo "$(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown) (runs trained at $trained_at), config \`$config\`,"
  python -m skd_experiments.table_notes conditions --cuda "$cuda" "${result_files[@]}"
  echo "Runs in \`$out\` (each run's train.json holds its command, commit, time and memory)."
  if [ ${#stale[@]} -gt 0 ]; then
    echo "Reused as finished, with other settings than the config and presets give now (see each train.json): ${stale[*]}."
  fi
  echo
  if [ "$kind" = kd ]; then
    python -m skd_experiments.table_notes teacher "$teacher_dir/result.test.json" "$teacher_config"
  fi
  python -m skd_experiments.make_tables "${result_files[@]}" ${significance[@]+"${significance[@]}"} --flags --plot "$results_dir/$name.png"
  echo
  echo "![validation perplexity against updates, mean over seeds]($name.png)"
} > "$results_dir/$name.md.part"
mv "$results_dir/$name.md.part" "$results_dir/$name.md"
# What the table was computed from (results, hypotheses, validation curves), to commit beside it.
rm -rf "$results_dir/$name-runs"
python -m skd_experiments.archive_runs --out "$results_dir/$name-runs" "${result_files[@]}"
cat "$results_dir/$name.md"
