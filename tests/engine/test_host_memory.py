"""Tests for cvtrain/engine/host_memory.py: on the CPU, malloc keeps what it frees instead of faulting it in anew."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch

from cvtrain.commands import setup
from cvtrain.engine import host_memory
from tests.conftest import FAST, compose_config, needs_glibc

# In a fresh process (the setting cannot be undone): where a 64 MiB buffer lives before and after keep_freed_memory,
# and whether the heap shrinks when it is freed.
WHERE_A_LARGE_BUFFER_LIVES = textwrap.dedent(
    """
    import json, torch
    from cvtrain.engine.host_memory import keep_freed_memory

    def heap():  # the (start, end) of the brk heap
        line = next(line for line in open("/proc/self/maps") if line.rstrip().endswith("[heap]"))
        return tuple(int(a, 16) for a in line.split()[0].split("-"))

    def in_heap(buffer):
        start, end = heap()
        return start <= buffer.data_ptr() < end

    buffer = torch.empty(16 * 2**20).fill_(1.0)
    default_in_heap = in_heap(buffer)
    del buffer
    kept = keep_freed_memory(torch.device("cpu"))
    buffer = torch.empty(16 * 2**20).fill_(1.0)
    kept_in_heap, heap_with_buffer = in_heap(buffer), heap()
    del buffer
    print(json.dumps({"default_in_heap": default_in_heap, "kept": kept, "kept_in_heap": kept_in_heap,
                      "heap_shrank": heap() != heap_with_buffer}))
    """
)


@needs_glibc
def test_large_buffers_come_from_the_heap_and_stay_there_when_freed(monkeypatch):
    for name in ("GLIBC_TUNABLES", *host_memory._USER_SETTINGS):
        monkeypatch.delenv(name, raising=False)
    out = subprocess.run(
        [sys.executable, "-c", WHERE_A_LARGE_BUFFER_LIVES], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == {
        "default_in_heap": False,  # glibc maps a fresh region for it, and unmaps it when freed
        "kept": True,
        "kept_in_heap": True,  # from the heap, for reuse
        "heap_shrank": False,  # and kept there when freed
    }


@pytest.mark.parametrize(
    "name, value",
    [
        ("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=1048576"),
        ("GLIBC_TUNABLES", "glibc.pthread.rseq=0:glibc.malloc.mmap_max=8"),
        ("MALLOC_MMAP_THRESHOLD_", "1048576"),
    ],
)
def test_a_users_own_malloc_settings_are_left_alone(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    monkeypatch.setattr(host_memory.ctypes, "CDLL", pytest.fail)  # mallopt must not be reached
    assert host_memory.keep_freed_memory(torch.device("cpu")) is False


def test_a_gpu_run_keeps_mallocs_defaults(monkeypatch):
    monkeypatch.setattr(host_memory.ctypes, "CDLL", pytest.fail)
    assert host_memory.keep_freed_memory(torch.device("cuda", 0)) is False


def test_every_subcommands_setup_applies_it_to_its_device(monkeypatch):
    devices = []
    monkeypatch.setattr(setup, "keep_freed_memory", devices.append)
    cfg = compose_config("data=synthetic", "data.length=8", "model=small_cnn", *FAST)
    setup.build_setup(cfg, need_train=True)
    assert devices == [torch.device("cpu")]
