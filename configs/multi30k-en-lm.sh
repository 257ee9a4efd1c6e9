# shellcheck shell=bash disable=SC2034,SC2054
# (sourced by the scripts, which read its variables; commas inside flag values are not separators)
# Language model on the English side of Multi30k (29,000 training captions, the
# translation data's 8,000 sentencepieces): a small transformer_lm sized for a CPU,
# trained to convergence: a fixed 9 epochs (999 updates), chosen from the baseline's validation
# curve by skd-fairseq-choose-epochs (the first epoch after which validation loss improves by
# less than 1 % over 3 epochs; the curve is in results/multi30k-en-lm-epochs.md), the last 5
# epoch checkpoints averaged. Perplexity is per sentencepiece token, over the text read as one stream.
DATASET=multi30k-en
DATA_DIR=data/multi30k.de-en
PREPARE=(scripts/prepare-multi30k.sh -s de -t en -o data/multi30k.de-en --vocab-size 8000 --lm en)
DATA=$DATA_DIR/lm-en/bin
FAIRSEQ_ARGS=(
  --task language_modeling
  --arch transformer_lm --share-decoder-input-output-embed
  --decoder-layers 2 --decoder-embed-dim 256 --decoder-ffn-embed-dim 512 --decoder-attention-heads 4
  --dropout 0.3 --optimizer adam --adam-betas '(0.9, 0.98)' --weight-decay 0.01 --clip-norm 0.0
  --lr 1e-3 --lr-scheduler inverse_sqrt --warmup-updates 200
  --tokens-per-sample 128 --sample-break-mode none --max-tokens 4096
  --max-epoch 9 --keep-last-epochs 5
)
EVAL_LM_ARGS=(--max-tokens 4096 --tokens-per-sample 128 --context-window 64)
AVERAGE_LAST=5
# skd-top1's schedule scaled to this run as configs/presets.sh scales it to the translation table's
# (18 epochs: alpha 0 for 2 epochs, 1 from epoch 10): 9 epochs of 111 updates, alpha 0 for the
# first epoch, rising to 1 at update 555 (epoch 5). The later flags win.
PRESET_skd_top1=("${PRESET_skd_top1[@]}" --skd-start-update 111 --skd-warmup-updates 444)
# reproduce.sh multi30k-lm: issue 15's language-model rows (the baseline, SKD with the tuned
# setting, and its random-candidate control; reproduce.sh adds --label-smoothing 0 for a language
# model, so SKD's data term is the plain cross-entropy), issue 38's top-1 distance reading, and the
# criteria's logged metrics beside them.
TABLE_PRESETS="baseline skd-neighbours skd-random skd-top1"
# No cost column: the runs' wall times measure the machine's load (benchmarks/ measures the cost).
TABLE_COLUMNS=(--training-metrics)
TABLE_COMPARISONS="skd-neighbours:skd-random"  # do the neighbours do better than random candidates?
