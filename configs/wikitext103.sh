# shellcheck shell=bash disable=SC2034,SC2054
# (sourced by the scripts, which read its variables; commas inside flag values are not separators)
# WikiText-103 language model: fairseq's standard recipe, transformer_lm_wiki103 (Baevski & Auli,
# 2019: adaptive input and adaptive softmax, cutoffs 20,000 / 60,000, tied weights and
# projections; fairseq's examples/language_model/README.adaptive_inputs.md). The recipe trains
# on 8 GPUs with --max-tokens 3072 --update-freq 3; on one GPU --update-freq 24 keeps its
# 73,728 tokens per update. Evaluated as the paper: complete sentences with 2,560 tokens of
# context. fairseq's README command for it (--sample-break-mode complete --max-tokens 3072
# --context-window 2560) leaves --tokens-per-sample at its default 1024: eval-lm subtracts the
# window from it and LMContextWindowDataset caps context plus sentence at the sum, 1,024 tokens.
# --tokens-per-sample 3072, the model's length, gives the 2,560.
# Data: set WIKITEXT103_RAW to wikitext-103-v1.zip (or its directory) before the first run;
# unset, the prepare script tries the original download address.
DATASET=wikitext103
DATA_DIR=data/wikitext-103
PREPARE=(scripts/prepare-wikitext-103.sh -r "${WIKITEXT103_RAW:-}" -o data/wikitext-103)
DATA=$DATA_DIR/bin
FAIRSEQ_ARGS=(
  --task language_modeling --arch transformer_lm_wiki103
  --max-update 286000 --lr 1.0 --t-mult 2 --lr-period-updates 270000 --lr-scheduler cosine --lr-shrink 0.75
  --warmup-updates 16000 --warmup-init-lr 1e-07 --stop-min-lr 1e-09 --optimizer nag --min-lr 0.0001 --clip-norm 0.1
  --max-tokens 3072 --update-freq 24 --tokens-per-sample 3072 --sample-break-mode none
  --skip-invalid-size-inputs-valid-test --ddp-backend legacy_ddp --no-epoch-checkpoints
)
EVAL_LM_ARGS=(--sample-break-mode complete --max-tokens 3072 --tokens-per-sample 3072 --context-window 2560
  --softmax-batch 1024)
# shellcheck source=configs/presets.sh
. "$(dirname "${BASH_SOURCE[0]}")/presets.sh"
# The recipe's criterion is adaptive_loss (cross-entropy, no label smoothing); SKD's data
# term is the same cross-entropy (label_smoothed_skd refuses label smoothing on an adaptive softmax).
PRESET_baseline=(--criterion adaptive_loss)
PRESET_skd_neighbours=("${PRESET_skd_neighbours[@]}" --label-smoothing 0)
PRESET_skd_random=("${PRESET_skd_random[@]}" --label-smoothing 0)
PRESET_skd_predicted=("${PRESET_skd_predicted[@]}" --label-smoothing 0)
TABLE_EXTRA_ARGS=()   # the presets above settle label smoothing (adaptive_loss takes no such flag)
