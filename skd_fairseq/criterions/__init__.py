from . import (  # noqa: F401
    label_smoothed_ps_kd,
    label_smoothed_self_kd,
    label_smoothed_skd,
    label_smoothed_tie_kd,
    label_smoothed_word_kd,
)
