# shellcheck shell=bash disable=SC2034,SC2054
# (sourced by the scripts, which read its variables; commas inside flag values are not separators)
# Multi30k de->en, trained to convergence on a CPU: the table config of results/multi30k-de-en.md.
# The model is the demo's (2+2 layers, 256 wide, shared embeddings); it trains for a fixed
# 18 epochs (2,394 updates), chosen from the baseline's validation curve by
# skd-fairseq-choose-epochs (the first epoch after which validation loss improves by less than
# 1 % over 3 epochs; the curve is in results/multi30k-de-en-epochs.md), and is scored with the
# average of its last 5 epoch checkpoints and beam 5.
DATASET=multi30k
PAIR=de-en
SRC=de
TGT=en
DATA_DIR=data/multi30k.de-en
PREPARE=(scripts/prepare-multi30k.sh -s de -t en -o data/multi30k.de-en --vocab-size 8000)
DATA=$DATA_DIR/bin
REFERENCE_PREFIX=$DATA_DIR/raw    # raw text: REFERENCE_PREFIX/{valid,test}.TGT
POST_PROCESS=sentencepiece
FAIRSEQ_ARGS=(
  --task translation -s de -t en
  --arch transformer --share-all-embeddings
  --encoder-layers 2 --decoder-layers 2
  --encoder-embed-dim 256 --decoder-embed-dim 256
  --encoder-ffn-embed-dim 512 --decoder-ffn-embed-dim 512
  --encoder-attention-heads 4 --decoder-attention-heads 4
  --dropout 0.3 --weight-decay 0.0001
  --optimizer adam --adam-betas '(0.9, 0.98)' --clip-norm 0.0
  --lr 1e-3 --lr-scheduler inverse_sqrt --warmup-updates 200
  --max-tokens 4096 --required-batch-size-multiple 1
  --max-epoch 18 --keep-last-epochs 5
)
GENERATE_ARGS=(--beam 5 --lenpen 1.0 --max-tokens 8000)
AVERAGE_LAST=5
# reproduce.sh multi30k: the rows of issue 15's table (the baseline, the matched-smoothing
# control, SKD with the tuned setting, its predicted and random-candidate variants, R-Drop),
# issue 38's other readings of self-distillation (the public SKD code's top-1 distance reading,
# progressive self-KD) and the column beside BLEU/chrF: the criteria's logged metrics.
TABLE_PRESETS="baseline ls-matched skd-neighbours skd-predicted skd-random skd-top1 ps-kd rdrop"
# No cost column: the runs' wall times measure the machine's load (benchmarks/ measures the cost).
TABLE_COLUMNS=(--training-metrics)
# Beside the tests against the baseline: each regulariser against label smoothing of SKD's
# strength (does it beat the cheap control?), and the neighbours against random candidates.
TABLE_COMPARISONS="skd-neighbours:ls-matched skd-predicted:ls-matched skd-random:ls-matched rdrop:ls-matched
  skd-top1:ls-matched ps-kd:ls-matched skd-neighbours:skd-random"
