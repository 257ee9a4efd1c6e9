# shellcheck shell=bash disable=SC2034,SC2054
# (sourced by the scripts, which read its variables; commas inside flag values are not separators)
# Criterion presets for scripts/train.sh --criterion-preset NAME (sourced; bash arrays).
# Any --skd-* flag given after them on the train.sh command line overrides the preset.

PRESET_baseline=(
  --criterion label_smoothed_cross_entropy --label-smoothing 0.1
)
# The SKD setting every SKD preset shares (neighbours, predicted and random candidates, and SKD
# inside word-KD): alpha 0.5 from the first update, k 8, cosine similarity, the temperature
# solved per position so that q keeps RHO = 0.75 on the gold token, and no candidate that has not
# yet been a training target (in a joined dictionary, the source-only pieces). Chosen on the
# validation split of Multi30k de-en trained to convergence (results/multi30k-de-en-sweep.md,
# seed 1): rho 0.75 with --skd-exclude-unseen gave 38.66 BLEU (perplexity 5.94), rho 0.75 without
# it 38.23, rho 0.6 37.98, rho 0.9 38.02, a fixed tau 0.3 38.26 (its gold mass drifted from 0.62
# to 0.32 as training pulled the neighbours together; valid perplexity 7.71), tau 0.15 37.49, the
# baseline 37.54. The rule: the best BLEU, and within 0.1 BLEU of it the lower validation perplexity.
SKD_TUNED=(
  --skd-similarity cosine --skd-topk 8 --skd-alpha 0.5 --skd-gold-mass 0.75 --skd-exclude-unseen
  --skd-start-update 0 --skd-warmup-updates 0
)
PRESET_skd_neighbours=(
  --criterion label_smoothed_skd --label-smoothing 0.1 --skd-candidates neighbours "${SKD_TUNED[@]}"
)
PRESET_skd_predicted=(
  --criterion label_smoothed_skd --label-smoothing 0.1 --skd-candidates predicted "${SKD_TUNED[@]}"
)
# Controls and alternatives for the SKD rows. skd-random: the tuned setting with k uniformly
# drawn candidates instead of the neighbours (the same gold mass, sent to tokens that are not
# neighbours). ls-matched: label smoothing whose epsilon leaves the gold token the mass the
# tuned SKD target leaves it, 1 - [(1 - alpha)(1 - 0.1) + alpha RHO] = 0.175, rounded to 0.05
# (the tie rounded up). rdrop: fairseq's R-Drop (Liang et al., 2021), label smoothing 0.1 plus
# alpha times the symmetric KL between two dropout passes; alpha 1 was chosen over the paper's
# IWSLT value, 5, on the Multi30k validation split (results/multi30k-de-en-sweep.md).
PRESET_skd_random=(
  --criterion label_smoothed_skd --label-smoothing 0.1 --skd-candidates random "${SKD_TUNED[@]}"
)
PRESET_ls_matched=(
  --criterion label_smoothed_cross_entropy --label-smoothing 0.2
)
PRESET_rdrop=(
  --criterion label_smoothed_cross_entropy_with_rdrop --label-smoothing 0.1 --rdrop-alpha 1
)
# The other readings of self-distillation (issue 38). skd-top1: the top-1 distance reading of
# the only public SKD code (fairseq branch, label_smoothed_cross_entropy_with_self_kd.py): the
# model's top-1 prediction yhat (the gold token included) with weight
# w = min(0.5, exp(-sigma |e_y - e_yhat|^2)) and loss (1 - alpha w) L_ls + alpha w (-log p(yhat)),
# alpha 0 for K updates and then rising by eta per update to 1 (here --skd-start-update K and
# --skd-warmup-updates 1/eta). That code's K = 4000 and eta = 1e-6 would leave alpha 0 for the
# whole of a 2,394-update Multi30k run, so K and eta are scaled to the run: K = 266 (two epochs,
# once the top-1 prediction means something), alpha reaching 1 after 1,064 more (epoch 10).
# SIGMA_TOP1 is chosen on the validation split (results/multi30k-de-en-sweep.md).
SIGMA_TOP1=0.5
PRESET_skd_top1=(
  --criterion label_smoothed_skd --label-smoothing 0.1 --skd-candidates predicted --skd-topk 1
  --skd-weighting distance --skd-sigma "$SIGMA_TOP1" --skd-weight-max 0.5
  --skd-alpha 1 --skd-start-update 266 --skd-warmup-updates 1064
)
# ps-kd: progressive self-KD (Kim et al., ICCV 2021): in epoch t of T the target is
# (1 - a_t) y_ls + a_t p_{t-1}, the student of the end of epoch t - 1 as a frozen teacher,
# a_t = a_T t / T. PS_KD_ALPHA (a_T) is chosen on the validation split: the paper's 0.8 and 0.5
# lose 10.7 and 3.2 BLEU to the baseline there, 0.2 loses 0.5 (results/multi30k-de-en-sweep.md).
PS_KD_ALPHA=0.2
PRESET_ps_kd=(
  --criterion label_smoothed_ps_kd --label-smoothing 0.1 --ps-kd-alpha "$PS_KD_ALPHA"
)
# Teacher-based presets: the teacher comes from KD_TEACHER (scripts/train.sh --teacher CKPT), or
# its cache from KD_TEACHER_CACHE (--teacher-cache DIR, written by skd-fairseq-cache-teacher):
# word-kd and skd-word-kd then read the teacher's stored top K instead of running it; tie-kd's
# first pass reads it and its later passes, which decode the student's own predictions, run the
# teacher, so it takes both. word-kd: Kim & Rush's word-level KD, beta 0.5, T 1; tie-kd: TIE-KD with
# the authors' WMT'14 settings (beta 0.5, k 5, 3 passes); skd-word-kd: word-level KD with the
# skd-neighbours settings inside the student loss.
if [ -n "${KD_TEACHER_CACHE:-}" ]; then
  KD_TEACHER_SOURCE=(--kd-teacher-cache "$KD_TEACHER_CACHE")
  TIE_TEACHER_SOURCE=(--kd-teacher-cache "$KD_TEACHER_CACHE" --kd-teacher-path "${KD_TEACHER:-}")
else
  KD_TEACHER_SOURCE=(--kd-teacher-path "${KD_TEACHER:-}")
  TIE_TEACHER_SOURCE=(--kd-teacher-path "${KD_TEACHER:-}")
fi
PRESET_word_kd=(
  --criterion label_smoothed_word_kd --label-smoothing 0.1
  "${KD_TEACHER_SOURCE[@]}" --kd-weight 0.5 --kd-temperature 1.0
)
PRESET_tie_kd=(
  --criterion label_smoothed_tie_kd --label-smoothing 0.1
  "${TIE_TEACHER_SOURCE[@]}" --kd-weight 0.5 --kd-temperature 1.0 --tie-topk 5 --tie-iterations 3
)
PRESET_skd_word_kd=(
  --criterion label_smoothed_word_kd --label-smoothing 0.1
  "${KD_TEACHER_SOURCE[@]}" --kd-weight 0.5 --kd-temperature 1.0
  --skd-candidates neighbours "${SKD_TUNED[@]}"
)
# Self-distillation from the model itself (issue 47): label smoothing plus alpha T^2 KL(teacher ||
# student), the teacher the same batch through the model with another dropout mask (self-kd-twin,
# R-Drop with the gradient stopped on one side) or a moving average of its weights without dropout
# (self-kd-ema). SELF_KD_TWIN_ALPHA is chosen on the validation split by the sweep's rule: alpha 0.5
# scores 37.60 BLEU, alpha 1 37.49 and alpha 2 36.43; the moving average's are too: alpha 1, decay
# 0.999 (a horizon of about 1,000 of the 2,394 updates), average and alpha started at update 399
# (the end of epoch 3; started at 0 the average holds the random initial weights and the student
# learns to copy its input), 33.16 BLEU, the best of three settings that all lose to the baseline
# (results/multi30k-de-en-sweep.md).
SELF_KD_TWIN_ALPHA=0.5
SELF_KD_EMA_ALPHA=1
SELF_KD_EMA_DECAY=0.999
SELF_KD_EMA_START_UPDATE=399
PRESET_self_kd_twin=(
  --criterion label_smoothed_self_kd --label-smoothing 0.1 --self-kd-teacher twin --self-kd-alpha "$SELF_KD_TWIN_ALPHA"
)
PRESET_self_kd_ema=(
  --criterion label_smoothed_self_kd --label-smoothing 0.1 --self-kd-teacher ema --self-kd-alpha "$SELF_KD_EMA_ALPHA"
  --self-kd-ema-decay "$SELF_KD_EMA_DECAY"
  --self-kd-start-update "$SELF_KD_EMA_START_UPDATE" --self-kd-ema-start-update "$SELF_KD_EMA_START_UPDATE"
)
PRESETS="baseline ls-matched skd-neighbours skd-predicted skd-random skd-top1 ps-kd rdrop self-kd-twin self-kd-ema word-kd tie-kd skd-word-kd"
