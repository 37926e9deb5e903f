"""Keep freed host memory in the process when the model runs on the CPU.

A CPU training step frees and allocates the same large buffers at every step: the activations, and the gradients
that `zero_grad(set_to_none=True)` frees. With its default settings, glibc's malloc starts by serving blocks above
128 KiB from fresh mappings (raising that threshold only as mapped blocks are freed) and hands the free top of its
heap back to the kernel, so a step faults many of the same pages in again, zero-filled by the kernel. Fixing the
mmap threshold at its maximum (32 MiB) and not trimming the heap makes malloc keep what it frees, as PyTorch's
caching allocator does on a GPU. Blocks above 32 MiB still get their own mappings and go back to the kernel when
freed, as by default, so a process that allocates huge buffers now and then does not keep them.
`docs/benchmarks.md` ("Keeping freed memory on the CPU") has what it gains and costs.

Only glibc has these knobs. Malloc settings of the user's own (`GLIBC_TUNABLES`, `MALLOC_*_`, another allocator
preloaded) are left as they are.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform

import torch

log = logging.getLogger(__name__)

# mallopt(3) parameters, from glibc's malloc.h
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 * 2**20  # the largest glibc accepts on 64-bit systems
NO_TRIM = 2**31 - 1  # a free heap top below 2 GiB stays in the process

_USER_SETTINGS = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_MMAP_MAX_", "MALLOC_TOP_PAD_")
_USER_TUNABLES = (
    "glibc.malloc.trim_threshold",
    "glibc.malloc.mmap_threshold",
    "glibc.malloc.mmap_max",
    "glibc.malloc.top_pad",
)


def has_glibc_malloc() -> bool:
    return platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def user_malloc_settings() -> str | None:
    """What in the environment already tunes or replaces malloc, or None."""
    for name in _USER_SETTINGS:
        if name in os.environ:
            return name
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if any(t in tunables for t in _USER_TUNABLES):
        return "GLIBC_TUNABLES"
    if "malloc" in os.environ.get("LD_PRELOAD", ""):  # tcmalloc, jemalloc: glibc's knobs would not apply
        return "LD_PRELOAD"
    return None


def keep_freed_memory(device: torch.device) -> bool:
    """On the CPU under glibc, make malloc reuse what it frees; True when it now does."""
    if device.type != "cpu" or not has_glibc_malloc():
        return False
    if (setting := user_malloc_settings()) is not None:
        log.debug("malloc is set by %s in the environment; cvtrain leaves it as it is", setting)
        return False
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    done = [mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX), mallopt(M_TRIM_THRESHOLD, NO_TRIM)]  # 1: set
    if done != [1, 1]:
        log.debug("mallopt refused (mmap threshold, trim threshold): %s", done)
    return done == [1, 1]
