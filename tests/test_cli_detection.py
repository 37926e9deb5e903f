"""Detection through the real CLI: a 2-step tiny Faster R-CNN on shapes, eval reproducing it, predictions.json
re-scored by pycocotools, the official COCO fixture scored from a results file, and predict drawing boxes."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from cvtrain.metrics.coco import COCO_METRICS
from tests.conftest import (
    OFFICIAL_COCO_STATS,
    PARITY_RESULTS,
    TINY_FASTER_RCNN,
    fixture_dir,
    read_results,
    run_cli,
    same_coco_stats,
    tiny_shapes,
)

FOUR_LOSSES = ("loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg")


def tiny(cache: Path) -> tuple[str, ...]:
    return (*tiny_shapes(cache), *TINY_FASTER_RCNN)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("shapes-cache")


@pytest.fixture(scope="module")
def trained(cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("fit")
    run_cli(
        "fit", *tiny(cache), "aug=detection", "trainer.max_steps=2", f"hydra.run.dir={run_dir}", cwd=run_dir
    )
    return run_dir


def test_fit_trains_two_steps_logging_each_loss_and_evaluates_voc_and_coco_ap(trained: Path) -> None:
    results = read_results(trained)
    assert results["status"] == "ok" and results["steps"] == 2 and results["model"] == "faster_rcnn"
    assert results["monitor"] == "voc_map" and "best_voc_map" in results  # the VOC layout is the default
    assert {"voc_map", "voc07_map", *COCO_METRICS} <= results.keys()
    log = (trained / "cvtrain.log").read_text()
    assert all(f"{name}=" in log for name in ("loss", *FOUR_LOSSES))
    assert (trained / "checkpoints" / "last.ckpt").is_file()
    for name in ("curves", "confusion_matrix", "pr_curve", "predictions"):
        assert (trained / "plots" / f"{name}.png").is_file(), name


def test_eval_reproduces_the_fit_and_saved_predictions_rescore_with_pycocotools(
    trained: Path, cache: Path, tmp_path: Path
) -> None:
    ckpt = f"ckpt={trained}/checkpoints/last.ckpt"
    run_cli("eval", ckpt, f"hydra.run.dir={tmp_path}/same", cwd=tmp_path)
    fit, again = read_results(trained), read_results(tmp_path / "same")
    for key in ("voc_map", "voc07_map", *COCO_METRICS):
        assert again[key] == fit[key], key

    # the COCO copy of the same scenes: crowd regions, non-contiguous category ids
    run_cli(
        "eval",
        ckpt,
        "data.layout=coco",
        "eval.save_predictions=true",
        f"hydra.run.dir={tmp_path}/coco",
        cwd=tmp_path,
    )
    ours = read_results(tmp_path / "coco")
    predictions = tmp_path / "coco" / "predictions.json"
    results = json.loads(predictions.read_text())
    assert results and {"image_id", "category_id", "bbox", "score"} == set(results[0])
    assert {r["category_id"] for r in results} <= {2, 3, 7, 11, 12}  # the file's ids, not training labels
    (ann_file,) = cache.glob("detection-*/annotations/instances_val.json")
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann_file))
        official = COCOeval(gt, gt.loadRes(str(predictions)), iouType="bbox")
        official.evaluate()
        official.accumulate()
        official.summarize()
    # After 2 steps these are near 0; tests/tasks/test_detection_task.py checks the same on non-trivial numbers.
    assert same_coco_stats([ours[k] for k in COCO_METRICS], [float(v) for v in official.stats])


def test_a_checkpoint_written_before_the_arch_field_evaluates_as_the_fit_did(
    trained: Path, tmp_path: Path
) -> None:
    """Its stored config names the builder of its day (build_faster_rcnn) and has no model.arch nor aug.letterbox:
    the YAML's `_target_` wins and the fields added since come from the YAMLs."""
    state = torch.load(trained / "checkpoints" / "last.ckpt", weights_only=True)
    state["config"]["model"]["_target_"] = "cvtrain.models.detection.build_faster_rcnn"
    del state["config"]["model"]["arch"], state["config"]["aug"]["letterbox"]
    torch.save(state, tmp_path / "old.ckpt")
    run_cli("eval", f"ckpt={tmp_path / 'old.ckpt'}", f"hydra.run.dir={tmp_path}/old", cwd=tmp_path)
    fit, again = read_results(trained), read_results(tmp_path / "old")
    assert again["model"] == "faster_rcnn"
    for key in ("voc_map", "voc07_map", *COCO_METRICS):
        assert again[key] == fit[key], key


@pytest.mark.parametrize(
    ("iou_type", "printed"), [("bbox", ("0.5046", "0.6970")), ("segm", ("0.3195", "0.5623"))]
)
def test_scoring_the_coco_api_fixture_prints_the_official_numbers(
    tmp_path: Path, iou_type: str, printed: tuple[str, str]
) -> None:
    parity = fixture_dir("coco-eval-parity")
    proc = run_cli(
        "eval",
        "data=coco",
        f"data.val_ann={parity / 'instances_val2014_100.json'}",
        f"predictions={parity / PARITY_RESULTS[iou_type]}",
        f"hydra.run.dir={tmp_path}",
        cwd=tmp_path,
    )
    results = read_results(tmp_path)
    names = COCO_METRICS if iou_type == "bbox" else [f"segm_{k}" for k in COCO_METRICS]
    assert same_coco_stats([results[k] for k in names], OFFICIAL_COCO_STATS[iou_type])
    assert all(value in proc.stdout for value in printed)  # the printed table (4 decimals)


def test_predict_draws_boxes_and_writes_the_detections(trained: Path, cache: Path, tmp_path: Path) -> None:
    (val_dir,) = cache.glob("detection-*/val")
    proc = run_cli(
        "predict",
        f"ckpt={trained}/checkpoints/last.ckpt",
        f"inputs={val_dir}",
        "predict.score_threshold=0.0",
        f"hydra.run.dir={tmp_path}",
        cwd=tmp_path,
    )
    records = json.loads((tmp_path / "predictions.json").read_text())
    assert len(records) == 6 and all(Path(r["drawn"]).is_file() for r in records)
    assert sorted(p.name for p in (tmp_path / "predictions").glob("*.png")) == sorted(
        p.with_suffix(".png").name for p in val_dir.glob("*.jpg")
    )
    detection = records[0]["detections"][0]
    assert (
        detection["class_name"] in ("circle", "square", "triangle", "diamond", "cross")
        and len(detection["box"]) == 4
    )
    assert Path(records[0]["path"]).name in proc.stdout


@pytest.mark.slow
def test_faster_rcnn_learns_the_shapes_on_the_cpu(tmp_path: Path) -> None:
    """The README's CPU recipe (conf/experiment/shapes_faster_rcnn.yaml)."""
    run_cli(
        "fit",
        "+experiment=shapes_faster_rcnn",
        "trainer.device=cpu",
        "logger.console.progress=false",
        f"data.cache_dir={tmp_path / 'cache'}",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
        timeout=3600,
    )
    results = read_results(tmp_path / "run")
    assert results["voc_map"] > 0.5 and results["map"] > 0.35  # measured: 0.775 and 0.547
