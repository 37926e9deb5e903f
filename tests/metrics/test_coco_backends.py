"""faster-coco-eval (the default) computes pycocotools' COCO AP: same matches, recall and scores, precision equal
but for pycocotools' 1 - 2**-52 at tp + fp == 1 (cvtrain/metrics/coco.py), so the 12 stats agree to <= 2.2e-16.
Checked on the COCO API's own fixture, on random sets with crowd regions, empty images, undetected images and
categories without objects, for boxes and masks, directly and through the evaluator's update / compute."""

from __future__ import annotations

import gc
import json
import re
from collections import defaultdict
from typing import Any

import numpy as np
import pytest
import torch
from faster_coco_eval import COCOeval_faster
from pycocotools.cocoeval import COCOeval

from cvtrain.contracts.batch import Batch
from cvtrain.data.annotations.coco_api import coco_api_from_dict, load_coco_api
from cvtrain.metrics.coco import COCO_METRICS, COCOEvaluator, evaluate_coco, metric_names, run_cocoeval
from cvtrain.metrics.synthetic_coco import SyntheticCOCO, synthetic_coco
from tests.conftest import OFFICIAL_COCO_STATS, PARITY_RESULTS, fixture_dir, same_coco_stats

ONE_MINUS_ULP = 1 / (1 + np.spacing(1))  # pycocotools' precision of a first detection that is a true positive


def assert_backends_agree(faster: Any, reference: Any) -> None:
    """The accumulated arrays are pycocotools' (precision but for its 1 - 2**-52), the stats equal to 1e-12."""
    assert np.array_equal(faster.eval["recall"], reference.eval["recall"])
    assert np.array_equal(faster.eval["scores"], reference.eval["scores"])
    ours, theirs = faster.eval["precision"], reference.eval["precision"]
    shifted = theirs == ONE_MINUS_ULP
    assert np.array_equal(ours[~shifted], theirs[~shifted]) and (ours[shifted] == 1.0).all()
    stats = [float(v) for v in faster.stats[:12]]
    assert same_coco_stats(stats, [float(v) for v in reference.stats])
    assert max(abs(a - b) for a, b in zip(stats, reference.stats, strict=True)) <= np.spacing(1)


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_both_backends_give_the_official_numbers_on_the_coco_api_fixture(iou_type: str) -> None:
    folder = fixture_dir("coco-eval-parity")
    results = json.loads((folder / PARITY_RESULTS[iou_type]).read_text())
    evaluations = {}
    for backend in ("faster", "pycocotools"):
        coco_gt = load_coco_api(folder / "instances_val2014_100.json")  # pycocotools turns polygons into RLE
        metrics, evaluations[backend] = evaluate_coco(coco_gt, results, iou_type=iou_type, backend=backend)
        assert list(metrics) == list(metric_names(iou_type))
        assert same_coco_stats(list(metrics.values()), OFFICIAL_COCO_STATS[iou_type])
    assert_backends_agree(evaluations["faster"], evaluations["pycocotools"])
    # the official evaluator's printout, to its 3 decimals
    printout = (folder / "official_printout.txt").read_text().split(f"type={iou_type}\n")[1]
    printed = [float(v) for v in re.findall(r"\] = ([0-9.]+)", printout)[:12]]
    assert printed == [round(v, 3) for v in OFFICIAL_COCO_STATS[iou_type]]


def random_set(seed: int, masks: bool) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    spec = SyntheticCOCO(
        images=40, detections_per_image=25, masks=masks, empty_images=0.1, undetected_images=0.1, crowd=0.05
    )
    gt, results = synthetic_coco(spec, seed=seed)
    # what the set is meant to hold, so the comparison covers it
    detected = {r["image_id"] for r in results}
    with_objects = {a["image_id"] for a in gt["annotations"]}
    assert any(a["iscrowd"] for a in gt["annotations"]) and len(gt["images"]) > len(with_objects)
    assert len(gt["images"]) > len(detected) and with_objects - detected
    assert {c["id"] for c in gt["categories"]} > {a["category_id"] for a in gt["annotations"]}
    return gt, results


@pytest.mark.parametrize(("iou_type", "seed"), [("bbox", 0), ("bbox", 1), ("segm", 2)])
def test_backends_agree_on_random_sets(iou_type: str, seed: int) -> None:
    gt, results = random_set(seed, masks=iou_type == "segm")
    evaluations = {
        backend: run_cocoeval(coco_api_from_dict(gt), results, iou_type=iou_type, backend=backend)
        for backend in ("faster", "pycocotools")
    }
    assert_backends_agree(evaluations["faster"], evaluations["pycocotools"])
    assert 0.05 < evaluations["faster"].stats[0] < 0.95  # neither trivial nor perfect
    assert (evaluations["faster"].eval["precision"] == 1.0).any()  # the one place they differ was reached


def feed_synthetic(evaluator: COCOEvaluator, gt: dict[str, Any], results: list[dict[str, Any]]) -> None:
    """The results as a detector's outputs: XYXY boxes, contiguous labels, three images per batch."""
    label_of = {c["id"]: i for i, c in enumerate(gt["categories"])}
    per_image: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        per_image[r["image_id"]].append(r)
    image_ids = [image["id"] for image in gt["images"]]
    for start in range(0, len(image_ids), 3):
        chunk = image_ids[start : start + 3]
        predictions = []
        for image_id in chunk:
            found = per_image[image_id]
            boxes = [[x, y, x + w, y + h] for x, y, w, h in (r["bbox"] for r in found)]
            predictions.append(
                {
                    "boxes": torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4),
                    "scores": torch.tensor([r["score"] for r in found], dtype=torch.float64),
                    "labels": torch.tensor([label_of[r["category_id"]] for r in found]),
                }
            )
        evaluator.update(Batch(images=[], targets=[], meta=[{"image_id": i} for i in chunk]), predictions)


def test_the_evaluator_gives_the_same_numbers_with_either_backend() -> None:
    gt, results = random_set(3, masks=False)
    computed = {}
    for backend in ("faster", "pycocotools"):
        label_to_cat_id = {i: c["id"] for i, c in enumerate(gt["categories"])}
        evaluator = COCOEvaluator(
            coco_gt=coco_api_from_dict(gt), label_to_cat_id=label_to_cat_id, backend=backend
        )
        feed_synthetic(evaluator, gt, results)
        computed[backend] = evaluator.compute()
        assert list(computed[backend]) == list(COCO_METRICS) and evaluator.report() is not None
    # the reference backend is pycocotools itself, bit for bit
    direct = run_cocoeval(coco_api_from_dict(gt), results, backend="pycocotools")
    assert list(computed["pycocotools"].values()) == [float(v) for v in direct.stats]
    assert same_coco_stats(list(computed["faster"].values()), list(computed["pycocotools"].values()))


def test_an_unknown_backend_is_refused() -> None:
    gt, results = random_set(4, masks=False)
    with pytest.raises(ValueError, match="pycocotools"):
        COCOEvaluator(coco_gt=coco_api_from_dict(gt), label_to_cat_id={0: 1}, backend="fast")
    with pytest.raises(ValueError, match="segm"):
        run_cocoeval(coco_api_from_dict(gt), results, iou_type="keypoints")


@pytest.mark.parametrize("backend", ["faster", "pycocotools"])
def test_cocoeval_runs_with_the_collector_paused_and_restores_it(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    gt, results = random_set(5, masks=False)
    seen = []
    evaluate = (COCOeval_faster if backend == "faster" else COCOeval).evaluate
    monkeypatch.setattr(
        COCOeval_faster if backend == "faster" else COCOeval,
        "evaluate",
        lambda self: (seen.append(gc.isenabled()), evaluate(self)),
    )
    evaluator = COCOEvaluator(
        coco_gt=coco_api_from_dict(gt),
        label_to_cat_id={i: c["id"] for i, c in enumerate(gt["categories"])},
        backend=backend,
    )
    feed_synthetic(evaluator, gt, results)
    stored = evaluator.results()
    keys = {frozenset(r) for r in stored}
    assert gc.isenabled()
    first = evaluator.compute()
    assert seen == [False] and gc.isenabled()
    # loadRes adds keys to the dicts it is given: the stored results are not those dicts
    assert {frozenset(r) for r in evaluator.results()} == keys and evaluator.compute() == first
    gc.disable()  # a caller that paused it itself keeps it paused
    try:
        evaluator.compute()
        assert not gc.isenabled()
    finally:
        gc.enable()
