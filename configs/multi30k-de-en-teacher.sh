# Multi30k de->en teacher for the kd-multi30k table: the demo data and optimisation, a
# model three times the student's size (3+3 layers, FFN 1024) trained three times longer.
# On this 2-core CPU that is roughly an hour; the students use configs/multi30k-de-en-demo.sh.
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
  --encoder-layers 3 --decoder-layers 3
  --encoder-embed-dim 256 --decoder-embed-dim 256
  --encoder-ffn-embed-dim 1024 --decoder-ffn-embed-dim 1024
  --encoder-attention-heads 4 --decoder-attention-heads 4
  --dropout 0.3 --weight-decay 0.0001
  --optimizer adam --adam-betas '(0.9, 0.98)' --clip-norm 0.0
  --lr 1e-3 --lr-scheduler inverse_sqrt --warmup-updates 400
  --max-tokens 4096 --max-update 1500
  --required-batch-size-multiple 1 --no-epoch-checkpoints
)
GENERATE_ARGS=(--beam 5 --lenpen 1.0 --max-tokens 8000)
DISTILL_ARGS=(--beam 5 --lenpen 1.0)    # scripts/distill-sequence-level.sh, for the seq-KD rows
AVERAGE_LAST=1
