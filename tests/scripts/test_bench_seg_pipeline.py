"""`scripts/bench_seg_pipeline.py` runs end to end on the VOC fixture: torchvision's segmentation reference preset
and cvtrain's `data=voc_seg aug=segmentation` pipeline, in turns."""

from __future__ import annotations

import re

from tests.conftest import fixture_dir, run_script


def test_the_segmentation_pipeline_benchmark_times_both_pipelines() -> None:
    voc = fixture_dir("voc-sample") / "VOCdevkit"
    out = run_script(
        "bench_seg_pipeline.py", "--voc", str(voc), "--images", "8", "--batch-size", "4", "--repeats", "2"
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "VOC 2007_000063 (500x375) x 8, crop 480, batch 4, 2 turns" in out.stdout
    for name in ("torchvision reference preset", "cvtrain pipeline \\(uint8\\)"):
        assert re.search(rf"^  {name} +[\d.]+ img/s  \(turns: \d+, \d+\)$", out.stdout, re.M), out.stdout
    assert re.search(r"^    per-core speed-up +[\d.]+x$", out.stdout, re.M)
