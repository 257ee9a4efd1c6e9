"""Tell the project's scripts how much GPU memory a fairseq process used at most.

``skd_experiments/run_and_measure.py`` (behind ``scripts/train.sh``) records the host's peak
resident memory of the run, which says nothing about the GPU. When it sets
``SKD_FAIRSEQ_CUDA_PEAK_FILE``, and only then (the plugin imports this module then only), every
process that loads the plugin and used CUDA
appends one JSON line, ``{"pid", "device", "peak_bytes"}`` with
``torch.cuda.max_memory_allocated``, as it exits. The hook is a multiprocessing
finaliser rather than ``atexit``: the per-GPU workers fairseq spawns leave through
``os._exit`` after running those, never through ``atexit``.
"""

import json
import multiprocessing.util
import os

import torch


def report(path: str) -> None:
    """Append this process's CUDA peak to ``path``; nothing when it never used CUDA."""
    if not (torch.cuda.is_available() and torch.cuda.is_initialized()):
        return
    device = torch.cuda.current_device()
    line = {"pid": os.getpid(), "device": device, "peak_bytes": torch.cuda.max_memory_allocated(device)}
    with open(path, "a") as f:
        f.write(json.dumps(line) + "\n")


def install(path: str) -> None:
    """Report to ``path`` when this process exits (the plugin calls it only when a measuring tool
    set ``skd_fairseq.CUDA_PEAK_ENV``)."""
    multiprocessing.util.Finalize(None, report, args=(path,), exitpriority=0)
