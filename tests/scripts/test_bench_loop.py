"""`make bench` (`scripts/bench_loop.py`) runs end to end: it times cvtrain's loop by wrapping
`cvtrain.engine.loop.train_step`, so a change to the loop that bypasses it must show here, not in a user's hands."""

from __future__ import annotations

import re

from tests.conftest import run_script


def test_the_loop_benchmark_times_both_loops_in_turns() -> None:
    args = ["--model", "resnet18", "--image-size", "32", "--batch-size", "4", "--device", "cpu"]
    args += ["--warmup", "1", "--segment", "1", "--segments", "3"]
    out = run_script("bench_loop.py", *args)
    assert out.returncode == 0, out.stderr[-2000:]
    segments = re.search(r"^each segment, bare / cvtrain ms: (.*)$", out.stdout, re.M)
    assert segments and len(segments.group(1).split(", ")) == 3
    for name in ("bare PyTorch step", "cvtrain fit step"):
        assert re.search(rf"^{name}: +[\d.]+ ms", out.stdout, re.M), out.stdout[-2000:]
    assert re.search(r"^overhead: [+-][\d.]+% \(median segment", out.stdout, re.M)
    assert "final evaluation" not in out.stdout  # stopped after the last segment, before evaluating
