# shellcheck shell=bash disable=SC2034,SC2054
# (sourced by the scripts, which read its variables; commas inside flag values are not separators)
# WikiText-103 language model with a full softmax: fairseq's transformer_lm recipe
# (examples/language_model/README.md). Over 267,744 words every micro-batch builds a
# [tokens x V] log-probability matrix (2 GB in fp32 at 2,048 tokens); configs/wikitext103.sh,
# the adaptive-softmax transformer_lm_wiki103, is the standard recipe. Kept for comparisons:
# reproduce.sh wikitext103 --config configs/wikitext103-full-softmax.sh.
# Data: set WIKITEXT103_RAW to wikitext-103-v1.zip (or its directory) before the first run;
# unset, the prepare script tries the original download address.
DATASET=wikitext103
DATA_DIR=data/wikitext-103
PREPARE=(scripts/prepare-wikitext-103.sh -r "${WIKITEXT103_RAW:-}" -o data/wikitext-103)
DATA=$DATA_DIR/bin
FAIRSEQ_ARGS=(
  --task language_modeling
  --arch transformer_lm --share-decoder-input-output-embed
  --dropout 0.1 --optimizer adam --adam-betas '(0.9, 0.98)' --weight-decay 0.01 --clip-norm 0.0
  --lr 0.0005 --lr-scheduler inverse_sqrt --warmup-updates 4000 --warmup-init-lr 1e-07
  --tokens-per-sample 512 --sample-break-mode none --max-tokens 2048 --update-freq 16
  --max-update 50000 --no-epoch-checkpoints
)
EVAL_LM_ARGS=(--batch-size 2 --tokens-per-sample 512 --context-window 400)
