#!/usr/bin/env bash
# The GPU acceptance run: CUDA tests, the criterion, top-k and adaptive-softmax benchmarks on the
# device, and an fp16 fairseq-train of the demo model, baseline against SKD; one JSON and one
# Markdown report in OUT_DIR.
set -uo pipefail

usage() {
  cat <<'EOF'
Usage: bash benchmarks/gpu-check.sh OUT_DIR [--wheels DIR] [--multi30k DIR] [--smoke] [--config FILE] [--updates N]

Runs, each step timed and recorded even when another fails (exit status 1 if any failed):
  1. cuda-tests      pytest -m cuda tests/test_cuda.py (exact CUDA search, fp16/bf16 steps against
                     fp32, no host sync in a steady step, the refresh step's memory bound)
  2. criterion-bf16  bench_criterion.py at the transformer-base shape (N 8192, V 32000, D 512, k 8)
                     in bf16: targets <= 1.03x step time, <= 1.05x peak memory
  3. topk            bench_topk.py at V 50,000 (embedding_topk against the naive V x V search)
  4. adaptive        bench_criterion.py --adaptive at the WikiText-103 shape, cluster candidates
                     (the step against adaptive_loss, and the table refresh in seconds)
  5. train-fp16      bench_train.py: fairseq-train --fp16 of CONFIG's model for N updates (300),
                     baseline against skd-neighbours (target tokens/s, peak GPU memory)
OUT_DIR gets gpu-check.json, gpu-check.md and each step's own output and log.

  --wheels DIR    install these cp312 wheels into OUT_DIR/site, offline: ../shared/tools/device-wheels.sh DIR,
                  plus pip download --no-deps --python-version 3.12 --only-binary=:all: -d DIR
                  pytest iniconfig pluggy packaging sentencepiece; without it the python on PATH
                  must import fairseq
  --multi30k DIR  the raw Multi30k files (train/val/test_2016_flickr .de.gz/.en.gz) for step 5,
                  when the config's data is not prepared yet (a GPU machine may have no ../shared)
  --smoke         the same steps on tiny shapes on the CPU (the test suite runs this)
  --config FILE   the model of step 5 (default configs/multi30k-de-en-demo.sh)
  --updates N     updates per run of step 5 (default 300; 8 with --smoke)
EOF
}

out="" wheels="" multi30k="" smoke=0 config="" updates=""
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --wheels) wheels=$2; shift 2 ;;
    --multi30k) multi30k=$2; shift 2 ;;
    --smoke) smoke=1; shift ;;
    --config) config=$2; shift 2 ;;
    --updates) updates=$2; shift 2 ;;
    -*) echo "gpu-check: unknown option '$1' (see --help)" >&2; exit 2 ;;
    *) [ -z "$out" ] || { echo "gpu-check: one OUT_DIR, got '$out' and '$1'" >&2; exit 2; }; out=$1; shift ;;
  esac
done
die() { echo "gpu-check: $*" >&2; exit 2; }
[ -n "$out" ] || { usage >&2; exit 2; }
repo=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out" && out=$(cd "$out" && pwd)
config=$(realpath -m -- "${config:-$repo/configs/multi30k-de-en-demo.sh}")
[ -f "$config" ] || die "--config '$config' not found"
updates=${updates:-$([ "$smoke" = 1 ] && echo 8 || echo 300)}
[[ $updates =~ ^[0-9]+$ ]] && [ "$updates" -ge 1 ] || die "--updates must be a positive integer, got '$updates'"
if [ -n "$multi30k" ]; then
  [ -f "$multi30k/train.de.gz" ] || die "--multi30k '$multi30k' has no train.de.gz (give the raw Multi30k directory)"
  MULTI30K_DIR=$(cd "$multi30k" && pwd)
  export MULTI30K_DIR
fi

# The environment: offline wheels into OUT_DIR/site, or what the python on PATH has.
. "$repo/scripts/device.sh" 2>/dev/null || true
python=${skd_python:-python3}
if [ -n "$wheels" ]; then
  compgen -G "$wheels/*.whl" > /dev/null || die "--wheels '$wheels' holds no .whl files"
  "$python" -m pip install -q --no-index --no-deps --target "$out/site" "$wheels"/*.whl > "$out/install.log" 2>&1 \
    || die "installing the wheels failed: see $out/install.log"
  export PYTHONPATH="$out/site${PYTHONPATH:+:$PYTHONPATH}" PATH="$out/site/bin:$PATH"
fi
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
"$python" -c "import fairseq, skd_fairseq" 2> "$out/import.log" \
  || die "'$python' cannot import fairseq and skd_fairseq (see $out/import.log): give --wheels DIR or install them"
cuda=$("$python" -c 'import torch; print(int(torch.cuda.is_available()))')
if [ "$smoke" = 0 ] && [ "$cuda" != 1 ]; then
  die "torch sees no CUDA device: this check is for a GPU machine (--smoke runs it on the CPU)"
fi
SKD_DEVICE_PROBE="$(command -v "$python")=$cuda"
export SKD_DEVICE_PROBE

steps=()
run_step() {  # NAME COMMAND...: runs it, its output in OUT_DIR/NAME.log, its status and time recorded
  local name=$1; shift
  echo "[gpu-check] $name: $*" >&2
  local start=$SECONDS
  (cd "$repo" && "$@") > "$out/$name.log" 2>&1
  local status=$?
  steps+=("$name $status $((SECONDS - start))")
  [ "$status" = 0 ] || echo "[gpu-check] $name FAILED ($status): see $out/$name.log" >&2
}

bench=("$python" "$repo/benchmarks/bench_criterion.py")
if [ "$smoke" = 1 ]; then
  base_shape=(--device cpu --tokens 128 --vocab 1000 --dim 32 --topk 8 --repeats 1 --warmup 1)
  topk_shape=(--device cpu --vocab 1000 --dim 32 --chunk-sizes default --methods embedding_topk naive --repeats 1)
  # shellcheck disable=SC2054  # the cutoffs are one value
  adaptive_shape=(--device cpu --adaptive 200,600 --tokens 128 --vocab 1000 --dim 32 --topk 8 --repeats 1 --warmup 1)
else
  base_shape=(--device cuda --tokens 8192 --vocab 32000 --dim 512 --topk 8)
  topk_shape=(--device cuda --vocab 50000 --dim 512 --chunk-sizes default --methods embedding_topk naive)
  # shellcheck disable=SC2054  # the cutoffs are one value
  adaptive_shape=(--device cuda --adaptive 20000,60000 --tokens 2048 --vocab 267744 --dim 1024 --topk 8
                  --refresh-rows 8192 --repeats 5)
fi

run_step cuda-tests "$python" -m pytest -q -m cuda tests/test_cuda.py -p no:cacheprovider --junitxml "$out/cuda-tests.xml"
run_step criterion-bf16 "${bench[@]}" "${base_shape[@]}" --dtype bf16 --json "$out/criterion-bf16.json" --markdown "$out/criterion-bf16.md"
run_step topk "$python" "$repo/benchmarks/bench_topk.py" "${topk_shape[@]}" --topk 8 --json "$out/topk.json" --markdown "$out/topk.md"
run_step adaptive "${bench[@]}" "${adaptive_shape[@]}" --json "$out/adaptive.json" --markdown "$out/adaptive.md"
fp16=$([ "$cuda" = 1 ] && echo --fp16)
run_step train-fp16 "$python" "$repo/benchmarks/bench_train.py" --config "$config" --updates "$updates" --rounds 1 \
  --skip-updates "$([ "$smoke" = 1 ] && echo 1 || echo 20)" --log-interval "$([ "$smoke" = 1 ] && echo 1 || echo 10)" \
  --variant "baseline=baseline $fp16" --variant "skd-neighbours=skd-neighbours $fp16" \
  --json "$out/train-fp16.json" --markdown "$out/train-fp16.md"

"$python" -m skd_experiments.gpu_check_report "$out" "$smoke" "${steps[@]}"
