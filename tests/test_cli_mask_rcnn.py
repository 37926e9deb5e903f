"""Mask R-CNN through the real CLI: two training steps on the shapes' instance masks, box and mask AP in
results.json, predictions.json with RLE masks that `eval predictions=` re-scores alike, predict drawing the masks,
and the CPU recipe."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from cvtrain.metrics.coco import COCO_METRICS
from tests.conftest import FAST, read_results, run_cli

SEGM_METRICS = [f"segm_{name}" for name in COCO_METRICS]


def test_mask_rcnn_trains_two_steps_and_reports_box_and_mask_ap(tmp_path: Path) -> None:
    cache, run = tmp_path / "cache", tmp_path / "fit"
    run_cli(
        "fit", *FAST, "model=mask_rcnn", "model.backbone=mobilenet_v3_large_320_fpn", "model.min_size=64",
        "model.max_size=64", "model.box_batch_size_per_image=16", "model.rpn_post_nms_top_n_test=30",
        "model.box_score_thresh=0.001", "data=shapes", f"data.cache_dir={cache}", "data.scene_size=64",
        "data.train_images=4", "data.val_images=4", "data.batch_size=2", "trainer.max_steps=2",
        f"hydra.run.dir={run}", cwd=tmp_path,
    )  # fmt: skip
    results = read_results(run)
    assert results["status"] == "ok" and results["steps"] == 2 and results["monitor"] == "map"
    assert all(math.isfinite(results[k]) for k in (*COCO_METRICS, *SEGM_METRICS))
    assert "loss_mask=" in (run / "cvtrain.log").read_text()

    run_cli("eval", f"ckpt={run}/checkpoints/last.ckpt", "eval.save_predictions=true",
            f"hydra.run.dir={tmp_path / 'eval'}", cwd=tmp_path)  # fmt: skip
    again = read_results(tmp_path / "eval")
    assert {k: again[k] for k in SEGM_METRICS} == {k: results[k] for k in SEGM_METRICS}
    saved = json.loads((tmp_path / "eval" / "predictions.json").read_text())
    assert saved and all(set(r["segmentation"]) == {"size", "counts"} for r in saved)
    (ann_file,) = cache.glob("detection-*/annotations/instances_val.json")
    run_cli("eval", "data=coco", f"data.val_ann={ann_file}", f"predictions={tmp_path / 'eval' / 'predictions.json'}",
            f"hydra.run.dir={tmp_path / 'score'}", cwd=tmp_path)  # fmt: skip
    scored = read_results(tmp_path / "score")
    assert {k: scored[k] for k in (*COCO_METRICS, *SEGM_METRICS)} == {
        k: again[k] for k in (*COCO_METRICS, *SEGM_METRICS)
    }

    (val_dir,) = cache.glob("detection-*/val")
    run_cli("predict", f"ckpt={run}/checkpoints/last.ckpt", f"inputs={val_dir}", "predict.score_threshold=0.0",
            f"hydra.run.dir={tmp_path / 'predict'}", cwd=tmp_path)  # fmt: skip
    records = json.loads((tmp_path / "predict" / "predictions.json").read_text())
    assert len(records) == 4 and all(Path(r["drawn"]).is_file() for r in records)
    assert all("segmentation" in d for r in records for d in r["detections"]) and records[0]["detections"]


@pytest.mark.slow
def test_mask_rcnn_learns_the_shapes_masks_on_the_cpu(tmp_path: Path) -> None:
    """The CPU recipe (conf/experiment/shapes_mask_rcnn.yaml)."""
    run_cli(
        "fit", "+experiment=shapes_mask_rcnn", "trainer.device=cpu", "logger.console.progress=false",
        f"data.cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path, timeout=7200,
    )  # fmt: skip
    results = read_results(tmp_path / "run")
    assert results["map"] > 0.3 and results["segm_map"] > 0.3
