#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment and install skd-fairseq into it.
set -euo pipefail

usage() {
  cat <<EOF2
Usage: $(basename "$0")

Creates .venv beside the checkout (or SKD_VENV) with Python 3.11 or 3.12, installs
torch (TORCH_SPEC, default torch==2.13.0: the CPU build this project is tested with;
set e.g. TORCH_SPEC='torch==2.11.0' to keep a CUDA build you need) and then skd-fairseq
in editable mode with its pinned fairseq build and the test extra.
Does nothing when the environment is already up to date with setup.py.
EOF2
}
[ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ] && { usage; exit 0; }

repo=$(cd "$(dirname "$0")/.." && pwd)
venv=${SKD_VENV:-$repo/.venv}
torch_spec=${TORCH_SPEC:-torch==2.13.0}
python=${PYTHON:-python3}

if [ ! -x "$venv/bin/python" ]; then
  version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  case "$version" in
    3.11|3.12) ;;
    *) echo "setup-env: $python is Python $version; the pinned fairseq build (ve-fairseq 0.12.3) has wheels for 3.11 and 3.12 only. Set PYTHON=python3.11." >&2; exit 1 ;;
  esac
  echo "[setup-env] creating $venv"
  "$python" -m venv "$venv"
fi

stamp=$venv/.skd-fairseq-installed
want="$(cat "$repo/setup.py" | sha256sum | cut -d' ' -f1) $torch_spec"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "[setup-env] installing $torch_spec, then skd-fairseq and its dependencies into $venv"
"$venv/bin/python" -m pip install -q "$torch_spec"
"$venv/bin/python" -m pip install -q -e "${repo}[experiments,test]"
"$venv/bin/python" -c "import skd_fairseq" >/dev/null 2>&1 \
  || { "$venv/bin/python" -c "import skd_fairseq"; echo "setup-env: skd_fairseq does not import" >&2; exit 1; }
echo "$want" > "$stamp"
echo "[setup-env] ready: $venv"
