"""Count the calls of the plugin's own code that would make the host wait for a CUDA device.

On a GPU, ``.item()``, ``.tolist()``, ``nonzero``, ``unique``, ``masked_select``, boolean-mask
indexing, ``bool()``/``int()``/``float()`` of a tensor, ``.cpu()``, ``repeat_interleave`` without
``output_size`` and ``torch.tensor(data, device=...)`` from host data all block until the device
has caught up. They are visible on the CPU too: a :class:`torch.overrides.TorchFunctionMode` sees
every torch call, and a call counts when the first frame outside torch that made it is in
``skd_fairseq`` (fairseq's own model and losses, which the baseline runs too, are not the
plugin's to answer for). ``.to(device)`` is not counted: on the CPU it cannot be told from the
no-op it is on the GPU (a move to the host is spelled ``.cpu()`` in the plugin).
"""

import collections
import os
import sys

import torch
from torch.overrides import TorchFunctionMode

import skd_fairseq

PLUGIN = os.path.dirname(skd_fairseq.__file__)
TORCH = os.path.dirname(torch.__file__)
SYNCING = {
    "item",
    "tolist",
    "nonzero",
    "argwhere",
    "unique",
    "unique_consecutive",
    "masked_select",
    "__bool__",
    "__int__",
    "__float__",
    "__index__",
    "cpu",
    "numpy",
    "tensor",
    "as_tensor",
    "repeat_interleave",
}


def _is_bool_index(index):
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in items)


def _plugin_caller():
    """``file:line`` of the first frame outside torch and this module, if it is the plugin's."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        if not (name.startswith(TORCH) or name == __file__):
            return (
                f"{os.path.relpath(name, os.path.dirname(PLUGIN))}:{frame.f_lineno}"
                if name.startswith(PLUGIN)
                else None
            )
        frame = frame.f_back
    return None


class HostSyncs(TorchFunctionMode):
    """``with HostSyncs() as syncs: ...`` then ``syncs.calls``: Counter of (op, plugin file:line)."""

    def __init__(self):
        super().__init__()
        self.calls = collections.Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        syncing = name in SYNCING
        if name == "repeat_interleave":
            syncing = kwargs.get("output_size") is None
        if name in ("__getitem__", "__setitem__") and len(args) > 1:
            syncing = _is_bool_index(args[1])
        if syncing:
            where = _plugin_caller()
            if where is not None:
                self.calls[(name, where)] += 1
        return func(*args, **kwargs)
