"""skd-fairseq: self-knowledge distillation (Hahn & Choi, RANLP 2019) as a fairseq plugin.

Load it with ``fairseq-train --user-dir $(skd-fairseq-user-dir) --criterion label_smoothed_skd``.
The mathematics and the flag checks live in the fairseq-free modules named by ``PURE_MODULES``
(tests/test_losses.py imports each where fairseq cannot be imported); the criteria in
:mod:`skd_fairseq.criterions` are thin fairseq adapters around them. Importing the package
registers the criteria with fairseq.
"""

__version__ = "0.1.0"

import logging

# fairseq's text-to-speech task logs "Please install tensorboardX" when fairseq is imported; where
# the plugin is imported first (skd-fairseq-inspect, Python code), that one logger is lowered.
logging.getLogger("fairseq.tasks.text_to_speech").setLevel(logging.WARNING)

import os  # noqa: E402

from .checkpoints import allow_fairseq_checkpoints  # noqa: E402

# Functions on tensors that know nothing of fairseq.
PURE_MODULES = ("similarity", "neighbours", "losses", "schedule", "distillation", "adaptive", "settings")
# Set by the tools that measure a run (skd_experiments/run_and_measure.py, behind scripts/train.sh):
# only then does the plugin report the process's peak GPU memory (skd_fairseq/cuda_peak.py).
CUDA_PEAK_ENV = "SKD_FAIRSEQ_CUDA_PEAK_FILE"

allow_fairseq_checkpoints()
if os.environ.get(CUDA_PEAK_ENV):
    from . import cuda_peak

    cuda_peak.install(os.environ[CUDA_PEAK_ENV])

from . import criterions  # noqa: E402,F401  (registers the criteria)
