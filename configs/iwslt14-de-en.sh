# shellcheck shell=bash disable=SC2034,SC2054
# (sourced by the scripts, which read its variables; commas inside flag values are not separators)
# IWSLT'14 de->en: fairseq's transformer_iwslt_de_en recipe (examples/translation/README.md).
# Scores: sacrebleu BLEU (13a) and chrF on the detokenised output against the untokenised
# references (OUT/raw), case-insensitive because the recipe lowercases everything; plus the
# literature's tokenised BLEU on the recipe's tokenised, lowercased references (sacrebleu
# --tokenize none, i.e. multi-bleu.perl).
# Data: set IWSLT14_RAW to the de-en.tgz archive (or its de-en/ directory) before the first
# run; unset, the prepare script tries the original download URL.
DATASET=iwslt14
PAIR=de-en
SRC=de
TGT=en
DATA_DIR=data/iwslt14.de-en
PREPARE=(scripts/prepare-iwslt14-de-en.sh -r "${IWSLT14_RAW:-}" -o data/iwslt14.de-en)
DATA=$DATA_DIR/bin
REFERENCE_PREFIX=$DATA_DIR/raw
TOKENIZED_REFERENCE_PREFIX=$DATA_DIR/tok
TOKENIZED_BLEU=plain
POST_PROCESS=subword_nmt
DETOKENIZE=moses
BLEU_LOWERCASE=1
FAIRSEQ_ARGS=(
  --task translation -s de -t en
  --arch transformer_iwslt_de_en --share-decoder-input-output-embed
  --optimizer adam --adam-betas '(0.9, 0.98)' --clip-norm 0.0
  --lr 5e-4 --lr-scheduler inverse_sqrt --warmup-updates 4000
  --dropout 0.3 --weight-decay 0.0001
  --max-tokens 4096 --max-epoch 60 --keep-last-epochs 5
)
GENERATE_ARGS=(--beam 5 --lenpen 1.0 --max-tokens 8000)
AVERAGE_LAST=5
