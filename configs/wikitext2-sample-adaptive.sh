# shellcheck shell=bash disable=SC2034,SC2054
# (sourced by the scripts, which read its variables; commas inside flag values are not separators)
# A small adaptive-softmax language model on the WikiText-2 sample in ../shared/data (issue 16's
# real run): transformer_lm with adaptive input and softmax, tied weights and projections,
# cutoffs at 1,000 / 3,000 of a 13,784-word vocabulary (about the 7.5 % / 22 % of
# WikiText-103's 20,000 / 60,000). The sample has no training split: the model trains on
# wiki.valid.tokens and is validated and tested on wiki.test.tokens, for a fixed 20 epochs,
# scored with checkpoint_last.pt (nothing is chosen on the test file).
DATASET=wikitext2-sample
DATA_DIR=data/wikitext2-sample
PREPARE=(scripts/prepare-wikitext.sh -r "${WIKITEXT2_SAMPLE_DIR:-../shared/data/wikitext-2-sample}"
         -o data/wikitext2-sample --train wiki.valid.tokens --valid wiki.test.tokens --test wiki.test.tokens)
DATA=$DATA_DIR/bin
FAIRSEQ_ARGS=(
  --task language_modeling --arch transformer_lm
  --decoder-layers 2 --decoder-embed-dim 128 --decoder-input-dim 128 --decoder-output-dim 128
  --decoder-ffn-embed-dim 512 --decoder-attention-heads 4
  --adaptive-input --adaptive-input-factor 4 --adaptive-input-cutoff 1000,3000
  --adaptive-softmax-cutoff 1000,3000 --adaptive-softmax-factor 4 --adaptive-softmax-dropout 0.2
  --tie-adaptive-weights --tie-adaptive-proj --dropout 0.3
  --optimizer adam --adam-betas '(0.9, 0.98)' --weight-decay 0.01 --clip-norm 0.0
  --lr 1e-3 --lr-scheduler inverse_sqrt --warmup-updates 200
  --tokens-per-sample 128 --sample-break-mode none --max-tokens 4096
  --max-epoch 20 --no-epoch-checkpoints --ddp-backend legacy_ddp
)
EVAL_LM_ARGS=(--max-tokens 4096 --tokens-per-sample 128 --context-window 64)
EVAL_CHECKPOINT=last
# shellcheck source=configs/presets.sh
. "$(dirname "${BASH_SOURCE[0]}")/presets.sh"
PRESET_baseline=(--criterion adaptive_loss)
PRESET_skd_random=("${PRESET_skd_random[@]}" --label-smoothing 0)
TABLE_EXTRA_ARGS=()
# The SKD rows: candidates from the gold word's own frequency cluster (--skd-adaptive-candidates
# cluster, the default on an adaptive softmax) and anywhere in the vocabulary (any: the only
# behaviour before the flag existed; the any runs were trained then, at 9547750, as
# skd-neighbours). Both keep those runs' setting, the tuned one before --skd-exclude-unseen joined
# it (every word of this dictionary is a training target; --skd-include-unseen now says so, since
# excluding unseen candidates became the default), so that they differ in where candidates lie only.
W2_SKD=(--criterion label_smoothed_skd --label-smoothing 0 --skd-candidates neighbours --skd-similarity cosine
        --skd-topk 8 --skd-alpha 0.5 --skd-gold-mass 0.75 --skd-start-update 0 --skd-warmup-updates 0
        --skd-include-unseen)
PRESET_skd_neighbours=("${W2_SKD[@]}" --skd-adaptive-candidates cluster)
PRESET_skd_neighbours_any=("${W2_SKD[@]}" --skd-adaptive-candidates any)
PRESETS="$PRESETS skd-neighbours-any"
TABLE_PRESETS="baseline skd-neighbours-any skd-neighbours"
TABLE_COMPARISONS="skd-neighbours:skd-neighbours-any"
