# shellcheck shell=bash
# Sourced by the scripts that run fairseq or the project's python. Puts the project's
# environment (scripts/setup-env.sh: $SKD_VENV, else .venv beside the checkout) first on PATH
# when it exists, so the scripts need no activated environment, and sets the bash array
# `device` to fairseq's device flags: (--cpu) when torch sees no GPU, else empty.
skd_venv=${SKD_VENV:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv}
if [ -x "$skd_venv/bin/python" ]; then PATH="$skd_venv/bin:$PATH"; fi
skd_python=$(command -v python || echo python)
# Importing torch takes seconds: on a machine with no GPU device node (NVIDIA, ROCm, WSL) torch
# cannot see one, so only its presence is checked; and a script run by another (reproduce.sh
# runs train.sh and the evaluation) reuses its caller's answer for the same python.
cuda="" skd_probe=${SKD_DEVICE_PROBE:-}
if [ -n "$skd_probe" ] && [ "${skd_probe%=*}" = "$skd_python" ]; then
  cuda=${skd_probe##*=}
elif ! compgen -G "/dev/nvidia[0-9]*" > /dev/null && [ ! -e /dev/kfd ] && [ ! -e /dev/dxg ]; then
  python -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("torch") is None)' 2>/dev/null && cuda=0
else
  cuda=$(python -c 'import torch; print(int(torch.cuda.is_available()))' 2>/dev/null) || cuda=""
fi
if [ -z "${cuda:-}" ]; then
  echo "$(basename "$0"): '$skd_python' cannot import torch: run 'bash scripts/setup-env.sh' (it creates $skd_venv), or activate an environment with torch and fairseq" >&2
  exit 1
fi
export SKD_DEVICE_PROBE="$skd_python=$cuda"
device=()
# shellcheck disable=SC2034  # read by the script that sources this file
[ "$cuda" = 1 ] || device=(--cpu)
