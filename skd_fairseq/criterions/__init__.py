from . import label_smoothed_skd  # noqa: F401
