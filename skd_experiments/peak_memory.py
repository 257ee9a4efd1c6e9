"""Peak memory of a block of code, on CUDA or on the CPU.

CUDA: the caching allocator's own statistics (bytes of tensors, not of its cache).
CPU: torch has no allocator statistics there, so we read the process's resident set.
Linux lets a process reset its high-water mark (``5`` into ``/proc/self/clear_refs``),
so the peak of the block is VmHWM after it minus VmRSS before it. For that to see
buffers that were freed and allocated again, glibc must hand them back to the kernel:
``cpu_mode()`` lowers its mmap threshold to 1 MiB (glibc's default rises to 32 MiB) and
the block starts with ``malloc_trim``. A benchmark calls it once at its start, so every
variant is timed under the same allocator settings as it is measured.
"""

import ctypes

import torch

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def _libc():
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def _status_bytes(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {key}")


def cpu_supported():
    """Why CPU peaks cannot be measured here, or None when they can."""
    if _libc() is None:
        return "not glibc"
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        _status_bytes("VmHWM")
    except (OSError, RuntimeError) as err:
        return f"cannot reset the resident-set high-water mark ({err})"
    return None


def cpu_mode():
    """Make freed buffers of 1 MiB or more go back to the kernel (see the module's doc)."""
    libc = _libc()
    libc.mallopt(_M_MMAP_THRESHOLD, 1 << 20)
    libc.mallopt(_M_TRIM_THRESHOLD, 1 << 20)


class PeakMemory:
    """``with PeakMemory(device) as peak: ...``; then ``peak.bytes`` is the block's peak
    memory above what was allocated when it began."""

    def __init__(self, device):
        self.device = torch.device(device)
        self.bytes = None

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            _libc().malloc_trim(0)
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self._base = _status_bytes("VmRSS")
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.bytes = torch.cuda.max_memory_allocated(self.device) - self._base
        else:
            self.bytes = max(0, _status_bytes("VmHWM") - self._base)
        return False


def describe(device):
    """How peaks are measured on this device, for the reports."""
    if torch.device(device).type == "cuda":
        return "torch.cuda.max_memory_allocated above the allocation at the start"
    return "process resident-set high-water mark (VmHWM) above the resident set at the start"
