#!/usr/bin/env bash
# Set up the environment if needed, then run the whole test suite (extra arguments go to pytest).
set -euo pipefail
case "${1:-}" in
  -h|--help)
    cat <<EOF2
Usage: $(basename "$0") [PYTEST ARGUMENTS...]

Creates or updates .venv (scripts/setup-env.sh), then runs the test suite with pytest
on the CPU; any arguments go to pytest, e.g. -k criterion or tests/test_losses.py.
The fairseq command tests read ../shared/data beside the checkout (or SKD_SHARED_DATA).
This is what CI runs (.ci/run).
EOF2
    exit 0 ;;
esac
repo=$(cd "$(dirname "$0")/.." && pwd)
bash "$repo/scripts/setup-env.sh"
cd "$repo"
exec "${SKD_VENV:-$repo/.venv}/bin/python" -m pytest "$@"
