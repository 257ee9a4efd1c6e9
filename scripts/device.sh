# Sourced by the scripts that run fairseq or the project's python. Puts the project's
# environment (scripts/setup-env.sh: $SKD_VENV, else .venv beside the checkout) first on PATH
# when it exists, so the scripts need no activated environment, and sets the bash array
# `device` to fairseq's device flags: (--cpu) when torch sees no GPU, else empty.
skd_venv=${SKD_VENV:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv}
if [ -x "$skd_venv/bin/python" ]; then PATH="$skd_venv/bin:$PATH"; fi
if ! cuda=$(python -c 'import torch; print(int(torch.cuda.is_available()))' 2>/dev/null); then
  echo "$(basename "$0"): '$(command -v python || echo python)' cannot import torch: run 'bash scripts/setup-env.sh' (it creates $skd_venv), or activate an environment with torch and fairseq" >&2
  exit 1
fi
device=()
[ "$cuda" = 1 ] || device=(--cpu)
