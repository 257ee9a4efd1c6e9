"""Let torch >= 2.6 load fairseq checkpoints with ``weights_only=True``.

fairseq stores its configuration partly as ``argparse.Namespace`` objects (legacy
``--arch`` models keep ``cfg.model`` as one), which the safe unpickler refuses. We
allow-list exactly that class instead of switching the safety check off.
"""

import argparse

import torch


def allow_fairseq_checkpoints() -> None:
    add_safe_globals = getattr(torch.serialization, "add_safe_globals", None)
    if add_safe_globals is not None:  # torch < 2.4 loads everything anyway
        add_safe_globals([argparse.Namespace])
