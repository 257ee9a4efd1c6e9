# shellcheck shell=bash disable=SC2034,SC2054
# (sourced by the scripts, which read its variables; commas inside flag values are not separators)
# Multi30k de->en, the table config's model sized for the 30-minute CPU demo (scripts/demo.sh):
# 500 updates, no epoch checkpoints, scored with checkpoint_best.pt.
# shellcheck source=configs/multi30k-de-en.sh
. "$(dirname "${BASH_SOURCE[0]}")/multi30k-de-en.sh"
# Appended, so they override the table config's values (fairseq's parser keeps the last one).
FAIRSEQ_ARGS+=(--max-epoch 0 --max-update 500 --no-epoch-checkpoints)
AVERAGE_LAST=1
