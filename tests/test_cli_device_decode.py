"""`data.decode=device` from the command line: the same training and the same metrics as the workers' decode
(on the CPU, where both decode at full size), the JPEG bytes crossing from a data worker process."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import make_imagefolder, read_results, run_cli
from tests.test_cli import TINY

METRICS = ("top1_err", "top5_err", "loss")


def test_fit_with_the_device_decoding_trains_exactly_as_with_the_workers(tmp_path: Path) -> None:
    root = make_imagefolder(tmp_path / "imgs")  # 24x20 JPEGs: both modes decode them at full size
    results = {}
    for decode, workers in (("workers", 0), ("device", 1)):
        run_dir = tmp_path / decode
        run_cli(
            "fit",
            "data=imagefolder",
            f"data.root={root}",
            *TINY,
            f"data.decode={decode}",
            f"data.num_workers={workers}",
            "data.persistent_workers=false",
            "trainer.epochs=2",
            f"hydra.run.dir={run_dir}",
            cwd=tmp_path,
        )
        results[decode] = read_results(run_dir)
    assert results["device"]["steps"] == results["workers"]["steps"] == 6
    for name in METRICS:
        assert results["device"][name] == results["workers"][name], name

    proc = run_cli(
        "eval",
        f"ckpt={tmp_path}/workers/checkpoints/last.ckpt",
        "data.decode=device",
        f"hydra.run.dir={tmp_path}/eval",
        cwd=tmp_path,
    )
    evaluated = read_results(tmp_path / "eval")
    for name in METRICS:
        assert evaluated[name] == results["workers"][name], (name, proc.stdout)


def test_bench_times_the_device_decoding(tmp_path: Path) -> None:
    root = make_imagefolder(tmp_path / "imgs")
    run_cli(
        "bench",
        "data=imagefolder",
        f"data.root={root}",
        *TINY,
        "data.decode=device",
        "bench.steps=2",
        "bench.warmup=1",
        f"hydra.run.dir={tmp_path}/bench",
        cwd=tmp_path,
    )
    bench = json.loads((tmp_path / "bench" / "bench.json").read_text())
    assert bench["data_images_per_s"] > 0 and bench["step_images_per_s"] > 0
    assert bench["options"]["decode"] == "device"
