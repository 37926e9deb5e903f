"""YOLO through the real CLI: `model=yolo` and `model=yolo_v1` train 2 steps on shapes with aug=yolo (mosaic,
letterbox), evaluate VOC and COCO AP, and `cvtrain eval ckpt=...` reproduces the fit's metrics exactly."""

from __future__ import annotations

from pathlib import Path

import pytest

from cvtrain.metrics.coco import COCO_METRICS
from tests.conftest import read_results, run_cli, tiny_shapes


def tiny(cache: Path) -> tuple[str, ...]:
    return (*tiny_shapes(cache), "aug=yolo", "trainer.max_steps=2")


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("shapes-cache")


@pytest.fixture(scope="module")
def trained_yolo(cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("fit-yolo")
    run_cli(
        "fit",
        *tiny(cache),
        "model=yolo",
        "model.size=n",
        "trainer.ema=true",
        f"hydra.run.dir={run_dir}",
        cwd=run_dir,
    )
    return run_dir


def test_yolo_trains_two_steps_logging_its_losses_and_evaluates(trained_yolo: Path) -> None:
    results = read_results(trained_yolo)
    assert results["status"] == "ok" and results["steps"] == 2 and results["model"] == "yolo"
    assert results["monitor"] == "voc_map" and {"voc_map", *COCO_METRICS} <= results.keys()
    log = (trained_yolo / "cvtrain.log").read_text()
    assert all(f"{name}=" in log for name in ("loss", "loss_cls", "loss_box", "loss_dfl"))


def test_eval_of_the_yolo_checkpoint_reproduces_the_fit(trained_yolo: Path, tmp_path: Path) -> None:
    run_cli("eval", f"ckpt={trained_yolo}/checkpoints/last.ckpt", f"hydra.run.dir={tmp_path}", cwd=tmp_path)
    fit, again = read_results(trained_yolo), read_results(tmp_path)
    for key in ("voc_map", "voc07_map", *COCO_METRICS):
        assert again[key] == fit[key], key


def test_yolo_v1_trains_two_steps_and_evaluates(cache: Path, tmp_path: Path) -> None:
    run_cli(
        "fit",
        *tiny(cache),
        "model=yolo_v1",
        "model.image_size=64",
        "model.width=8",
        "model.head_channels=32",
        f"hydra.run.dir={tmp_path}",
        cwd=tmp_path,
    )
    results = read_results(tmp_path)
    assert results["status"] == "ok" and results["steps"] == 2 and results["model"] == "yolo_v1"
    assert {"voc_map", *COCO_METRICS} <= results.keys()
    assert "loss=" in (tmp_path / "cvtrain.log").read_text()
