# Sourced by the scripts that run fairseq: sets the bash array `device` to fairseq's
# device flags, (--cpu) when torch sees no GPU, else empty.
device=()
python -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null || device=(--cpu)
