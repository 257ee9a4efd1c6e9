"""skd-fairseq: self-knowledge distillation (Hahn & Choi, RANLP 2019) as a fairseq plugin.

Load it with ``fairseq-train --user-dir $(skd-fairseq-user-dir) --criterion label_smoothed_skd``.
The mathematics lives in fairseq-free modules (:mod:`skd_fairseq.similarity`,
:mod:`skd_fairseq.neighbours`, :mod:`skd_fairseq.losses`, :mod:`skd_fairseq.schedule`);
importing the package also registers the criteria with fairseq.
"""

__version__ = "0.1.0"

from . import cuda_peak
from .checkpoints import allow_fairseq_checkpoints

allow_fairseq_checkpoints()
cuda_peak.install()

from . import criterions  # noqa: E402,F401  (registers the criteria)
