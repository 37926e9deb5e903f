"""`cvtrain bench`: the input pipeline and the training step timed on fit's own objects, written to bench.json."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from cvtrain.commands.bench import run_bench
from cvtrain.errors import ConfigError
from tests.conftest import FAST, compose_raw, run_cli

KEYS = {
    "status", "monitor", "monitor_mode", "model", "data", "choices", "batch_size", "num_workers", "device", "autocast", "options", "processes", "steps", "warmup",
    "data_images_per_s", "step_images_per_s", "compute_images_per_s", "data_wait_share", "data_s", "data_images",
    "step_s", "step_images",
}  # fmt: skip


def bench(tmp_path: Path, *args: str) -> tuple[dict, str]:
    proc = run_cli(
        "bench", *FAST, "bench.steps=3", "bench.warmup=1", *args, f"hydra.run.dir={tmp_path}", cwd=tmp_path
    )
    return json.loads((tmp_path / "bench.json").read_text()), proc.stdout


def check(result: dict, batch_size: int) -> None:
    assert set(result) == KEYS
    assert result["steps"] == 3 and result["warmup"] == 1 and result["device"] == "cpu"
    assert result["data_images"] == result["step_images"] == 3 * batch_size
    for key in ("data_images_per_s", "step_images_per_s", "compute_images_per_s", "data_s", "step_s"):
        assert math.isfinite(result[key]) and result[key] > 0, key
    assert 0.0 <= result["data_wait_share"] <= 1.0
    assert result["step_images_per_s"] * result["step_s"] == pytest.approx(result["step_images"])
    # the step without its wait for data is never slower than the step
    assert result["compute_images_per_s"] >= result["step_images_per_s"]


def test_bench_on_shapes_runs_past_the_end_of_an_epoch(tmp_path: Path) -> None:
    # 5 classes x 4 images in batches of 4: 5 batches an epoch, 4 per measurement, so the step runs into epoch 2
    result, out = bench(
        tmp_path,
        "data=shapes",
        f"data.cache_dir={tmp_path / 'cache'}",
        "data.train_per_class=4",
        "data.val_per_class=1",
        "data.batch_size=4",
    )
    check(result, batch_size=4)
    assert result["model"] == "small_cnn" and result["data"] == "shapes" and result["num_workers"] == 0
    assert result["choices"]["aug"] == "light"
    assert result["options"] == {
        "image_size": 32, "precision": "auto", "channels_last": False, "compile": False, "decode": "workers"
    }  # fmt: skip
    assert "bench: small_cnn on shapes, batch 4, 0 workers, cpu" in out and "bench.json in" in out
    assert "data.num_workers=0: batches load in the training process" in out
    assert not (tmp_path / "tensorboard").exists()


def test_a_sweep_of_benches_on_synthetic_data_is_summarised_by_throughput(tmp_path: Path) -> None:
    args = ["data=synthetic", "data.length=16", "data.batch_size=2", "data.image_size=16"]
    proc = run_cli(
        "bench", "-m", *FAST, "bench.steps=3", "bench.warmup=1", *args, "data.num_workers=0,1",
        f"hydra.sweep.dir={tmp_path}", cwd=tmp_path,
    )  # fmt: skip
    for job, workers in ((0, 0), (1, 1)):
        result = json.loads((tmp_path / str(job) / "bench.json").read_text())
        check(result, batch_size=2)
        assert result["data"] == "synthetic" and result["num_workers"] == workers
    assert "in series with the step" in proc.stdout  # the verdict without workers
    assert ("input-bound" in proc.stdout) != (
        "compute-bound" in proc.stdout
    )  # with one; whichever the numbers give
    rows = list(csv.DictReader((tmp_path / "sweep_summary.csv").open()))
    assert sorted(r["overrides"] for r in rows) == ["data.num_workers=0", "data.num_workers=1"]
    assert all(
        r["status"] == "ok" and r["metric"] == "step_images_per_s" and float(r["value"]) > 0 for r in rows
    )
    assert float(rows[0]["value"]) >= float(rows[1]["value"])  # best first


def test_bench_needs_at_least_one_step(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"bench.steps=0 is out of range: bench.steps must be >= 1\."):
        run_bench(compose_raw("command=bench", "bench.steps=0"), tmp_path, overrides=[])
