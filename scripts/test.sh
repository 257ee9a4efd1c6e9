#!/usr/bin/env bash
# Set up the environment if needed, then run the whole test suite (extra arguments go to pytest).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
bash "$repo/scripts/setup-env.sh"
cd "$repo"
exec "${SKD_VENV:-$repo/.venv}/bin/python" -m pytest "$@"
