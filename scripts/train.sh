#!/usr/bin/env bash
# Train one (config, criterion preset, seed) run with fairseq-train and the skd_fairseq plugin.
set -euo pipefail

usage() {
  local preset_list
  # shellcheck source=/dev/null disable=SC2153  # PRESETS: set by presets.sh
  preset_list=$(. "$(dirname "$0")/../configs/presets.sh"; echo "${PRESETS// /, }")
  cat <<EOF
Usage: $(basename "$0") CONFIG --criterion-preset NAME [--seed N] [--save-dir DIR] [--method LABEL] [--data BIN] [--teacher CKPT] [--teacher-cache DIR] [FAIRSEQ FLAGS...]

Runs fairseq-train with the data, model and optimisation of CONFIG (a file in configs/),
the criterion settings of preset NAME and --user-dir set to the plugin. The presets of
configs/presets.sh (a config may redefine them for its model, and add its own):
  $preset_list
Extra flags go to fairseq-train last, so they override the config and the preset,
e.g. --skd-alpha 0.3 or --max-update 200.

  --seed N          random seed (default 1)
  --save-dir DIR    checkpoints and logs (default runs/CONFIG/NAME/seedN)
  --method LABEL    the row name in result tables (default: the preset name)
  --check-finished  train nothing: exit 0 when DIR finished with exactly these settings,
                    3 when it finished with others, 4 when it has not finished
  (--criterion-preset --list prints CONFIG's presets, one a line, "NAME teacher" for those
  that distil from a teacher, and trains nothing)
  --data BIN        train on this binarised data instead of CONFIG's (same dictionaries),
                    e.g. the output of scripts/distill-sequence-level.sh
  --teacher CKPT    the teacher checkpoint(s) of the teacher-based presets (a:b for an
                    ensemble; sets KD_TEACHER, which those presets read)
  --teacher-cache DIR
                    the teacher's outputs stored by skd-fairseq-cache-teacher for CONFIG's
                    training split (sets KD_TEACHER_CACHE): word-kd and skd-word-kd read it
                    instead of running the teacher; tie-kd reads it in its first pass and
                    needs --teacher for the later ones

Prepares the data first when CONFIG's data directory is missing. Re-running the same
command resumes an interrupted run from DIR/checkpoint_last.pt and leaves a finished one
alone; with other settings (e.g. a larger --max-update) it trains on from the checkpoint.
Writes DIR/train.log (fairseq's log) and DIR/train.json (command, commit, updates, wall
time, tokens/s, peak memory).
EOF
}

[ $# -ge 1 ] || { usage >&2; exit 2; }
case "$1" in -h|--help) usage; exit 0 ;; esac
config=$(realpath -m -- "$1"); shift
preset="" seed=1 save_dir="" method="" data_override="" teacher="" teacher_cache="" check_finished=0 extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --criterion-preset) preset=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --save-dir) save_dir=$(realpath -m -- "$2"); shift 2 ;;
    --method) method=$2; shift 2 ;;
    --data) data_override=$(realpath -m -- "$2"); shift 2 ;;
    --teacher) teacher=$2; shift 2 ;;
    --teacher-cache) teacher_cache=$2; shift 2 ;;
    --check-finished) check_finished=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) extra+=("$1"); shift ;;
  esac
done

die() { echo "train: $*" >&2; exit 1; }
repo=$(cd "$(dirname "$0")/.." && pwd)
[ -f "$config" ] || die "config '$config' not found (see configs/)"
# shellcheck source=/dev/null
[ -n "$preset" ] || die "give --criterion-preset (one of: $(. "$repo/configs/presets.sh"; echo "$PRESETS"))"
[[ $seed =~ ^[0-9]+$ ]] || die "--seed must be a non-negative integer, got '$seed'"
if [ -n "$teacher" ]; then
  resolved=()
  IFS=: read -r -a parts <<< "$teacher"
  for part in "${parts[@]}"; do
    [ -f "$part" ] || die "--teacher: checkpoint '$part' not found"
    resolved+=("$(realpath -- "$part")")
  done
  # shellcheck disable=SC2034  # read by the teacher-based presets of configs/presets.sh
  KD_TEACHER=$(IFS=:; echo "${resolved[*]}")
fi
if [ -n "$teacher_cache" ]; then
  [ -f "$teacher_cache/manifest.json" ] \
    || die "--teacher-cache: '$teacher_cache' holds no teacher cache (no manifest.json); build one with skd-fairseq-cache-teacher"
  # shellcheck disable=SC2034  # read by the teacher-based presets of configs/presets.sh
  KD_TEACHER_CACHE=$(realpath -- "$teacher_cache")
  cache_topk=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["topk"])' "$KD_TEACHER_CACHE/manifest.json")
fi
# shellcheck source=/dev/null
. "$repo/configs/presets.sh"
# The config after the presets: a config may redefine a preset for its model (e.g. the
# adaptive-softmax baseline of configs/wikitext103.sh).
# shellcheck source=/dev/null
. "$config"
# PRESETS: set by presets.sh in this shell (the usage message reads it in a subshell too).
# shellcheck disable=SC2031
if [ "$preset" = --list ]; then  # for the scripts that check their rows before training any
  for p in $PRESETS; do
    v="PRESET_${p//-/_}[*]"
    if [[ " ${!v} " == *" --kd-teacher-path "* || " ${!v} " == *" --kd-teacher-cache "* ]]; then
      echo "$p teacher"
    else
      echo "$p"
    fi
  done
  exit 0
fi
preset_var="PRESET_${preset//-/_}[@]"
# shellcheck disable=SC2031
[[ " $PRESETS " == *" $preset "* ]] || die "unknown preset '$preset' (one of: $PRESETS)"
preset_args=("${!preset_var}")
if [ -n "$teacher_cache" ]; then
  # A cache given to a preset that does not read it would be recorded but never used.
  [[ " ${preset_args[*]} " == *" --kd-teacher-cache "* ]] \
    || die "--teacher-cache: preset '$preset' does not read a teacher cache (word-kd, skd-word-kd and tie-kd do); leave it out"
  # A teacher retrained since the cache was built would leave word-KD learning from the old one.
  if [ -n "$teacher" ]; then
    (cd "$repo" && python3 -m skd_experiments.teacher_cache_check "$KD_TEACHER_CACHE" "$KD_TEACHER") \
      || die "--teacher-cache $teacher_cache is not the cache of --teacher $teacher: rebuild it with skd-fairseq-cache-teacher"
  fi
fi
for i in "${!preset_args[@]}"; do
  if [ "${preset_args[$i]}" = --kd-teacher-path ] && [ -z "${preset_args[$((i + 1))]}" ]; then
    [ -z "$teacher_cache" ] || die "preset '$preset' runs the teacher beside the cache (its later passes decode the student's own predictions): give --teacher CKPT too, the checkpoint the cache was built from"
    die "preset '$preset' distils from a teacher: give --teacher CKPT (or set KD_TEACHER), or --teacher-cache DIR"
  fi
done
name=$(basename "$config" .sh)
save_dir=${save_dir:-runs/$name/$preset/seed$seed}

cd "$repo"
if [ -n "$data_override" ]; then
  [ -f "$data_override/.done" ] || die "--data $data_override is not a finished data directory (no .done)"
  DATA=$data_override
fi
# fairseq resumes from checkpoint_last.pt, but a finished run would take one more update
# before noticing --max-update: a run that ended with exactly these settings is not restarted.
settings=("$DATA" "${FAIRSEQ_ARGS[@]}" "${preset_args[@]}" --seed "$seed" "${extra[@]}")
signature=$(printf '%q ' "${settings[@]}")
if [ "$check_finished" = 1 ]; then
  [ -f "$save_dir/.finished" ] || exit 4
  [ "$(cat "$save_dir/.finished")" = "$signature" ] && exit 0 || exit 3
fi
# shellcheck source=scripts/device.sh
. "$repo/scripts/device.sh"  # the project's python first on PATH, before preparing or training
if [ -z "$data_override" ] && [ ! -f "$DATA/.done" ]; then
  echo "[train] preparing data: ${PREPARE[*]}"
  bash "${PREPARE[@]}"
fi
new_dir=0 top=$save_dir  # top: the outermost directory mkdir -p creates
[ -d "$save_dir" ] || new_dir=1
while [ ! -e "$(dirname "$top")" ]; do top=$(dirname "$top"); done
mkdir -p "$save_dir"
if [ -f "$save_dir/.finished" ] && [ "$(cat "$save_dir/.finished")" = "$signature" ]; then
  echo "[train] $save_dir already finished with these settings; not training again (delete $save_dir/.finished to continue)"
  exit 0
fi
cmd=(fairseq-train "$DATA" --user-dir "$repo/skd_fairseq" "${FAIRSEQ_ARGS[@]}" "${preset_args[@]}"
     --seed "$seed" --save-dir "$save_dir" --log-format json --log-interval 50 "${extra[@]}")
cmd+=(${device[@]+"${device[@]}"})
echo "[train] $name / $preset / seed $seed -> $save_dir"
printf '%q ' "${cmd[@]}" > "$save_dir/command.txt"; echo >> "$save_dir/command.txt"
# fairseq's own progress goes to the terminal and to train.log; the wrapper records peak memory.
status=0
python -m skd_experiments.run_and_measure --log "$save_dir/train.log" --summary "$save_dir/train.json" \
  --meta config="$name" preset="$preset" method="${method:-$preset}" seed="$seed" extra_flags="${extra[*]}" data="$data_override" \
    teacher_cache="${KD_TEACHER_CACHE:-}" teacher_cache_topk="${cache_topk:-}" \
  -- "${cmd[@]}" || status=$?
if [ "$status" != 0 ]; then
  # fairseq prints its configuration and a traceback before the error; name the step and the error last.
  error=$(grep -E '^[A-Za-z_.]*(Error|Exception): ' "$save_dir/train.log" | tail -n 1 || true)
  # fairseq's exit status is passed on (argparse's 2 for an unknown flag, 1 for a refused value).
  if [ "$new_dir" = 1 ] && ! compgen -G "$save_dir/checkpoint*.pt" > /dev/null \
    && ! grep -q 'train_inner' "$save_dir/train.log"; then
    # Nothing was trained (no update logged, no checkpoint): leave no directory that looks like a
    # run (its log is above). A run that trained keeps its directory and log.
    rm -rf "$save_dir"
    # and the parents made for it, while empty (another run may have started beside it)
    d=$save_dir
    while [ "$d" != "$top" ]; do d=$(dirname "$d"); rmdir "$d" 2> /dev/null || break; done
    echo "train: fairseq-train failed before its first checkpoint: ${error:-exit status $status (see its output above)}; $save_dir was removed" >&2
  else
    echo "train: fairseq-train failed: ${error:-exit status $status} (log: $save_dir/train.log)" >&2
  fi
  exit "$status"
fi
printf '%s' "$signature" > "$save_dir/.finished"
