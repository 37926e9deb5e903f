"""Tests for cvtrain/host_memory.py: on the CPU, malloc keeps what it frees instead of faulting it in anew."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch

from cvtrain import composition, host_memory
from tests.conftest import FAST, compose_config, needs_glibc

# In a fresh process (the setting cannot be undone): where buffers live before and after keep_freed_memory, and
# whether the heap shrinks when two 24 MiB buffers at its top are freed.
WHERE_BUFFERS_LIVE = textwrap.dedent(
    """
    import ctypes, json, torch
    from cvtrain.host_memory import keep_freed_memory

    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.free.argtypes = ctypes.c_void_p, (ctypes.c_void_p,)

    def heap():  # the (start, end) of the brk heap
        line = next(line for line in open("/proc/self/maps") if line.rstrip().endswith("[heap]"))
        return tuple(int(a, 16) for a in line.split()[0].split("-"))

    def in_heap(address):
        start, end = heap()
        return start <= address < end

    def allocate(mib):  # touched, as a tensor's buffer is
        address = libc.malloc(mib * 2**20)
        ctypes.memset(address, 1, mib * 2**20)
        return address

    # Freeing this mapped block raises glibc's own thresholds to 16 MiB (mmap) and 32 MiB (trim): the buffers
    # after the call are above both.
    first = allocate(16)
    before = in_heap(first)
    libc.free(first)
    kept = keep_freed_memory(torch.device("cpu"))
    a, b = allocate(24), allocate(24)
    after, heap_with_buffers = in_heap(a) and in_heap(b), heap()
    libc.free(b)
    libc.free(a)
    huge = allocate(64)
    print(json.dumps({"16 MiB before": before, "kept": kept, "24 MiB after": after,
                      "heap shrank": heap() != heap_with_buffers, "64 MiB after": in_heap(huge)}))
    """
)


@needs_glibc
def test_buffers_up_to_32_mib_come_from_the_heap_and_stay_there_when_freed(monkeypatch):
    for name in ("GLIBC_TUNABLES", "LD_PRELOAD", *host_memory._USER_SETTINGS):
        monkeypatch.delenv(name, raising=False)
    out = subprocess.run(
        [sys.executable, "-c", WHERE_BUFFERS_LIVE], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == {
        "16 MiB before": False,  # glibc maps a fresh region for it, and unmaps it when freed
        "kept": True,
        "24 MiB after": True,  # from the heap, for reuse
        "heap shrank": False,  # and kept there when freed
        "64 MiB after": False,  # above 32 MiB: its own mapping still, handed back when freed
    }


@pytest.mark.parametrize(
    "name, value",
    [
        ("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=1048576"),
        ("GLIBC_TUNABLES", "glibc.pthread.rseq=0:glibc.malloc.mmap_max=8"),
        ("MALLOC_MMAP_THRESHOLD_", "1048576"),
        ("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"),
    ],
)
def test_a_users_own_malloc_settings_are_left_alone(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    monkeypatch.setattr(host_memory.ctypes, "CDLL", pytest.fail)  # mallopt must not be reached
    assert host_memory.keep_freed_memory(torch.device("cpu")) is False


def test_a_gpu_run_keeps_mallocs_defaults(monkeypatch):
    monkeypatch.setattr(host_memory.ctypes, "CDLL", pytest.fail)
    assert host_memory.keep_freed_memory(torch.device("cuda", 0)) is False


def test_build_setup_applies_it_to_the_run_device(monkeypatch):
    devices = []
    monkeypatch.setattr(composition, "keep_freed_memory", devices.append)
    cfg = compose_config("data=synthetic", "data.length=8", "model=small_cnn", *FAST)
    composition.build_setup(cfg, need_train=True)
    assert devices == [torch.device("cpu")]
