# shellcheck shell=bash disable=SC2034,SC2054
# (sourced by the scripts, which read its variables; commas inside flag values are not separators)
# Multi30k de->en teacher for the kd-multi30k table: the demo config's data, optimisation
# and decoding, with a model three times the student's size (3+3 layers, FFN 1024)
# trained three times longer. On this 2-core CPU that is roughly an hour; the students
# use configs/multi30k-de-en-demo.sh itself.
# shellcheck source=configs/multi30k-de-en-demo.sh
. "$(dirname "${BASH_SOURCE[0]}")/multi30k-de-en-demo.sh"
# Appended, so they override the demo's values (fairseq's parser keeps the last one).
FAIRSEQ_ARGS+=(
  --encoder-layers 3 --decoder-layers 3
  --encoder-ffn-embed-dim 1024 --decoder-ffn-embed-dim 1024
  --warmup-updates 400 --max-update 1500
)
DISTILL_ARGS=(--beam 5 --lenpen 1.0)    # scripts/distill-sequence-level.sh, for the seq-KD rows
# reproduce.sh kd-multi30k: TIE-KD and SKD inside word-KD tested against word-KD too (the greedy
# columns' tests against the baseline are seq-KD's headline, Kim & Rush's greedy gain).
KD_TABLE_COMPARISONS="tie-kd:word-kd skd-word-kd:word-kd"
