"""Keep freed host memory in the process when the model runs on the CPU.

A CPU training step frees and allocates the same large buffers at every step: the activations, and the gradients
that `zero_grad(set_to_none=True)` frees. With its default settings, glibc's malloc serves each block above its mmap
threshold from a fresh mapping and hands the free top of its heap back to the kernel, so every step faults the same
pages in again, zero-filled by the kernel: 11,000-14,000 page faults per step for ResNet-18 at 64 px (batch 32),
78,000-113,000 at 160 px. Serving every block from the heap and never trimming it makes malloc keep what it frees,
as PyTorch's caching allocator does on a GPU: the step is 7-10 % faster. The price is that the process keeps its
peak memory, a few blocks higher than before (the heap grows before freed blocks fit again), until it exits.
`scripts/bench_host_memory.py` measures both.

Only glibc has these knobs. A user who sets malloc's thresholds (`GLIBC_TUNABLES`, `MALLOC_*_`) keeps them.
"""

from __future__ import annotations

import ctypes
import os
import platform

import torch

from cvtrain.engine.reporting import log

# mallopt(3) parameters, from glibc's malloc.h
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4

_USER_SETTINGS = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_MMAP_MAX_", "MALLOC_TOP_PAD_")
_USER_TUNABLES = ("glibc.malloc.trim_threshold", "glibc.malloc.mmap_threshold", "glibc.malloc.mmap_max")


def keep_freed_memory(device: torch.device) -> bool:
    """On the CPU under glibc, make malloc reuse what it frees; True when it now does."""
    if device.type != "cpu" or platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if any(name in os.environ for name in _USER_SETTINGS) or any(t in tunables for t in _USER_TUNABLES):
        log.debug("malloc's thresholds are set in the environment; cvtrain leaves them as they are")
        return False
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # mallopt returns 1 on success. No new mappings for large blocks; the heap's free top stays (up to 2 GiB).
    return mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, 2**31 - 1) == 1
