# shellcheck shell=bash disable=SC2034,SC2054
# (sourced by the scripts, which read its variables; commas inside flag values are not separators)
# Multi30k de->en teacher of the kd-multi30k table, whose students are configs/multi30k-de-en.sh
# (2+2 layers, 256 wide). Why this size: of the two candidates trained by the table's epoch rule
# and scored on the validation split (results/kd-multi30k-de-en-teacher-candidates.md), this one,
# 3+3 layers 512 wide (FFN 1024, 4 heads; about 4x the student's parameters), scored the higher
# validation BLEU, 41.40 against the student baseline's 37.54 (deeper and 256 wide: 40.24).
# Same data, dictionary, optimisation, averaging of the last 5 epochs and beam as the students;
# a longer warm-up for the wider model, and the epoch skd-fairseq-choose-epochs chose from its
# validation curve (13, 1,729 updates; about 5 h on one CPU thread beside another run).
# shellcheck source=configs/multi30k-de-en.sh
. "$(dirname "${BASH_SOURCE[0]}")/multi30k-de-en.sh"
# Appended, so they override the students' values (fairseq's parser keeps the last one).
FAIRSEQ_ARGS+=(
  --encoder-layers 3 --decoder-layers 3
  --encoder-embed-dim 512 --decoder-embed-dim 512
  --encoder-ffn-embed-dim 1024 --decoder-ffn-embed-dim 1024
  --warmup-updates 400 --max-epoch 13
)
DISTILL_ARGS=(--beam 5 --lenpen 1.0)    # scripts/distill-sequence-level.sh, for the seq-KD rows
# reproduce.sh kd-multi30k: TIE-KD and SKD inside word-KD tested against word-KD too (the greedy
# columns' tests against the baseline are seq-KD's headline, Kim & Rush's greedy gain).
KD_TABLE_COMPARISONS="tie-kd:word-kd skd-word-kd:word-kd"
# The cost column: the rows' step time and memory measured interleaved with this teacher and its cache.
KD_TABLE_COST_FROM=benchmarks/results/train-cpu-multi30k-kd-cache.json
