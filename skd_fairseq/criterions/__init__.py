from . import label_smoothed_ps_kd, label_smoothed_skd, label_smoothed_tie_kd, label_smoothed_word_kd  # noqa: F401
