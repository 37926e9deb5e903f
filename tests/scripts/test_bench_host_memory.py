"""`scripts/bench_host_memory.py` runs end to end: pairs of fresh processes, malloc as it comes then freed memory
kept, each with its step time and page faults."""

from __future__ import annotations

import re

from tests.conftest import needs_glibc, run_script

TINY = ("--image-size", "32", "--batch-size", "2", "--steps", "5")


@needs_glibc
def test_the_host_memory_benchmark_compares_fresh_processes_in_pairs() -> None:
    out = run_script("bench_host_memory.py", *TINY, "--pairs", "2")
    assert out.returncode == 0, out.stderr[-2000:]
    rows = re.findall(
        r"^  pair (\d), (default malloc|freed memory kept) +[\d.]+ ms/step +(\d+) page faults/step +peak +\d+ MiB$",
        out.stdout,
        re.M,
    )
    assert [(pair, mode) for pair, mode, _ in rows] == [
        ("1", "default malloc"), ("1", "freed memory kept"), ("2", "default malloc"), ("2", "freed memory kept")
    ]  # fmt: skip
    assert re.search(r"^kept against default: [+-][\d.]+% step time \(median of 2 pairs", out.stdout, re.M)


def test_it_refuses_to_compare_when_the_setting_cannot_apply(monkeypatch) -> None:
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=1048576")
    out = run_script("bench_host_memory.py", *TINY, "--pairs", "1")
    assert out.returncode != 0 and "keep_freed_memory does nothing here" in out.stderr
