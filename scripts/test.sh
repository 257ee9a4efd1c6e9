#!/usr/bin/env bash
# Set up the environment if needed, then run the whole test suite (extra arguments go to pytest).
set -euo pipefail
case "${1:-}" in
  -h|--help)
    cat <<EOF2
Usage: $(basename "$0") [PYTEST ARGUMENTS...]

Creates or updates .venv (scripts/setup-env.sh), checks the code's style (ruff check,
ruff format --check and shellcheck, configured in pyproject.toml; a few seconds), then runs
the test suite with pytest on the CPU, one pytest-xdist worker per core (SKD_TEST_WORKERS to change it; 0 runs in
this process), each with one thread (OMP_NUM_THREADS, default 1); any arguments go to
pytest, e.g. -k criterion or tests/test_losses.py. This is what CI runs (.ci/run).

Run the fast tier first: $(basename "$0") -m "not slow" (the mathematics and the criteria in
process, no fairseq command or script; under 2 minutes).

The fairseq command tests read Multi30k and the WikiText-2 sample from \$SKD_SHARED_DATA, else
../shared/data beside the checkout, else download them once into \$SKD_DATA_CACHE (default
\${XDG_CACHE_HOME:-~/.cache}/skd-fairseq) from \$MULTI30K_URL and \$WIKITEXT2_URL (default: the
datasets' public repositories); see docs/testing.md.
EOF2
    exit 0 ;;
esac
repo=$(cd "$(dirname "$0")/.." && pwd)
bash "$repo/scripts/setup-env.sh"
cd "$repo"
venv=${SKD_VENV:-$repo/.venv}
"$venv/bin/ruff" check --quiet .
"$venv/bin/ruff" format --check --quiet .
"$venv/bin/shellcheck" scripts/*.sh configs/*.sh benchmarks/*.sh .ci/run
# Most of the time goes to fairseq commands that run one after another on one thread each:
# one worker per core, one thread per worker, is what fills the cores without oversubscribing.
# Tests go to the workers one at a time, longest first (tests/conftest.py orders them), so the
# run does not end with one long test on one core.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
exec "$venv/bin/python" -m pytest -n "${SKD_TEST_WORKERS:-auto}" --dist load --maxschedchunk 1 "$@"
