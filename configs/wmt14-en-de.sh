# shellcheck shell=bash disable=SC2034,SC2054
# (sourced by the scripts, which read its variables; commas inside flag values are not separators)
# WMT'14 en->de: transformer base with shared embeddings (fairseq's scaling-NMT settings,
# 4096 tokens x update-freq 8 per GPU stands for 8 GPUs x 4096; halve --update-freq per doubling).
# Scores: sacrebleu on detokenised output against the raw newstest2014 references, and the
# literature's compound-split tokenised BLEU.
# Data: set WMT14_RAW to the directory of the recipe's archives before the first run;
# unset, the prepare script tries the recipe's statmt.org download addresses.
DATASET=wmt14
PAIR=en-de
SRC=en
TGT=de
DATA_DIR=data/wmt14.en-de
PREPARE=(scripts/prepare-wmt14-en-de.sh -r "${WMT14_RAW:-}" -o data/wmt14.en-de)
DATA=$DATA_DIR/bin
REFERENCE_PREFIX=$DATA_DIR/raw
TOKENIZED_REFERENCE_PREFIX=$DATA_DIR/tok
TOKENIZED_BLEU=compound-split
POST_PROCESS=subword_nmt
DETOKENIZE=moses
FAIRSEQ_ARGS=(
  --task translation -s en -t de
  --arch transformer_wmt_en_de --share-all-embeddings
  --optimizer adam --adam-betas '(0.9, 0.98)' --clip-norm 0.0
  --lr 7e-4 --lr-scheduler inverse_sqrt --warmup-updates 4000 --warmup-init-lr 1e-07
  --dropout 0.1 --weight-decay 0.0
  --max-tokens 4096 --update-freq 8 --max-update 100000
  --save-interval-updates 1000 --keep-interval-updates 10 --no-epoch-checkpoints
)
GENERATE_ARGS=(--beam 4 --lenpen 0.6 --max-tokens 8000)
AVERAGE_LAST=10
