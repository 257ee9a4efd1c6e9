# Criterion presets for scripts/train.sh --criterion-preset NAME (sourced; bash arrays).
# Any --skd-* flag given after them on the train.sh command line overrides the preset.

PRESET_baseline=(
  --criterion label_smoothed_cross_entropy --label-smoothing 0.1
)
PRESET_skd_neighbours=(
  --criterion label_smoothed_skd --label-smoothing 0.1
  --skd-candidates neighbours --skd-similarity cosine --skd-topk 8 --skd-temperature 1.0
  --skd-alpha 0.5 --skd-start-update 0 --skd-warmup-updates 0
)
PRESET_skd_predicted=(
  --criterion label_smoothed_skd --label-smoothing 0.1
  --skd-candidates predicted --skd-similarity cosine --skd-topk 8 --skd-temperature 1.0
  --skd-alpha 0.5 --skd-start-update 0 --skd-warmup-updates 0
)
PRESETS="baseline skd-neighbours skd-predicted"
