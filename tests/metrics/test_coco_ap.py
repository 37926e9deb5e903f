"""COCO AP: our evaluator equals pycocotools run directly, and the official numbers on the COCO API's fixture (the
default backend, faster-coco-eval, to 1e-12: tests/metrics/test_coco_backends.py says why not bit for bit)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from rich.console import Console

from cvtrain.commands.score import score_results
from cvtrain.contracts.batch import Batch
from cvtrain.data.annotations.coco_api import coco_api_from_dict
from cvtrain.data.coco.detection import COCODetection
from cvtrain.data.voc.detection import VOCDetection, VOCRecord
from cvtrain.errors import DataError
from cvtrain.metrics.coco import COCO_METRICS, COCOEvaluator, metric_names
from tests.conftest import OFFICIAL_COCO_STATS, PARITY_RESULTS, fixture_dir, same_coco_stats

CAT_IDS = [3, 17, 64]  # non-contiguous: labels 0, 1, 2


def coco_truth(ann_file: Path) -> COCODetection:
    """The annotations of a COCO-format file alone, as `cvtrain eval predictions=FILE` reads them."""
    return COCODetection(
        ann_file=ann_file, image_dir=Path(ann_file).parent, keep_empty=True, train=False, require_images=False
    )


def tiny_ground_truth() -> dict[str, Any]:
    rng = np.random.default_rng(7)
    images, annotations = [], []
    for image_id in range(1, 9):
        images.append({"id": image_id * 10, "file_name": f"{image_id}.jpg", "width": 300, "height": 200})
        if image_id == 8:
            continue  # an image without any object
        for _ in range(int(rng.integers(1, 6))):
            side = float(rng.choice([12.0, 50.0, 130.0]))  # small, medium and large objects
            x, y = (float(v) for v in rng.uniform(0, 60, size=2))
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id * 10,
                    "category_id": int(rng.choice(CAT_IDS)),
                    "bbox": [x, y, side * 1.2, side],
                    "area": side * side * 1.2,
                    "iscrowd": int(len(annotations) % 9 == 4),  # a few crowd regions
                }
            )
    categories = [{"id": c, "name": f"class{c}"} for c in CAT_IDS]
    return {"images": images, "annotations": annotations, "categories": categories}


def random_predictions(gt: dict[str, Any], seed: int) -> dict[int, dict[str, torch.Tensor]]:
    """Jittered copies of the objects (some with the wrong class, some twice) plus background boxes."""
    rng = np.random.default_rng(seed)
    predictions = {}
    for image in gt["images"]:
        boxes, scores, labels = [], [], []
        for ann in (a for a in gt["annotations"] if a["image_id"] == image["id"]):
            x, y, w, h = ann["bbox"]
            for _ in range(int(rng.integers(0, 3))):
                jitter = rng.normal(0, 0.08, size=4) * [w, h, w, h]
                boxes.append([x + jitter[0], y + jitter[1], x + w + jitter[2], y + h + jitter[3]])
                scores.append(rng.random())
                label = CAT_IDS.index(ann["category_id"])
                labels.append(label if rng.random() < 0.85 else int(rng.integers(0, 3)))
        for _ in range(int(rng.integers(0, 4))):
            x0, y0 = rng.uniform(0, 200, size=2)
            boxes.append([x0, y0, x0 + rng.uniform(5, 90), y0 + rng.uniform(5, 90)])
            scores.append(rng.random())
            labels.append(int(rng.integers(0, 3)))
        predictions[image["id"]] = {
            "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "scores": torch.tensor(scores, dtype=torch.float32),
            "labels": torch.tensor(labels, dtype=torch.int64),
        }
    return predictions


def feed(evaluator: Any, predictions: dict[Any, dict[str, torch.Tensor]]) -> None:
    items = list(predictions.items())
    for start in range(0, len(items), 3):  # batches of three images
        chunk = items[start : start + 3]
        batch = Batch(images=[], targets=[], meta=[{"image_id": image_id} for image_id, _ in chunk])
        evaluator.update(batch, [p for _, p in chunk])


def pycocotools_stats(coco_gt: COCO, results: list[dict[str, Any]]) -> list[float]:
    with contextlib.redirect_stdout(io.StringIO()):
        evaluation = COCOeval(coco_gt, coco_gt.loadRes(results), iouType="bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return [float(v) for v in evaluation.stats]


@pytest.mark.parametrize("backend", ["faster", "pycocotools"])
@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_official_numbers_on_the_coco_api_fixture(iou_type: str, backend: str) -> None:
    folder = fixture_dir("coco-eval-parity")
    metrics = score_results(
        coco_truth(folder / "instances_val2014_100.json"), folder / PARITY_RESULTS[iou_type], backend
    )
    assert list(metrics) == list(metric_names(iou_type))
    assert same_coco_stats(list(metrics.values()), OFFICIAL_COCO_STATS[iou_type])


def test_evaluator_equals_pycocotools_on_the_same_detections() -> None:
    gt = tiny_ground_truth()
    coco_gt = coco_api_from_dict(gt)
    evaluator = COCOEvaluator(coco_gt=coco_gt, label_to_cat_id=dict(enumerate(CAT_IDS)))
    predictions = random_predictions(gt, seed=1)
    feed(evaluator, predictions)
    direct = []
    for image_id, p in predictions.items():
        for (x0, y0, x1, y1), score, label in zip(
            p["boxes"].tolist(), p["scores"].tolist(), p["labels"].tolist(), strict=True
        ):
            bbox = [x0, y0, x1 - x0, y1 - y0]
            direct.append({"image_id": image_id, "category_id": CAT_IDS[label], "bbox": bbox, "score": score})
    metrics = evaluator.compute()
    assert same_coco_stats(
        list(metrics.values()), pycocotools_stats(coco_api_from_dict(tiny_ground_truth()), direct)
    )
    assert 0.1 < metrics["map"] < 0.9 and all(v >= 0 for v in metrics.values())


def test_results_are_in_coco_format_with_file_ids() -> None:
    coco_gt = coco_api_from_dict(tiny_ground_truth())
    evaluator = COCOEvaluator(coco_gt=coco_gt, label_to_cat_id=dict(enumerate(CAT_IDS)))
    feed(evaluator, {20: {"boxes": torch.tensor([[1.0, 2.0, 11.0, 7.0]]), "scores": torch.tensor([0.5]),
                          "labels": torch.tensor([2])}})  # fmt: skip
    assert evaluator.results() == [
        {"image_id": 20, "category_id": 64, "bbox": [1.0, 2.0, 10.0, 5.0], "score": 0.5}
    ]
    with pytest.raises(DataError, match="999"):
        evaluator.add(999, torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"labels \[5\]"):
        evaluator.add(20, torch.zeros(1, 4), torch.ones(1), torch.tensor([5]))


def test_merge_of_ranks_equals_one_pass() -> None:
    gt = tiny_ground_truth()
    coco_gt = coco_api_from_dict(gt)
    predictions = random_predictions(gt, seed=2)
    whole = COCOEvaluator(coco_gt=coco_gt, label_to_cat_id=dict(enumerate(CAT_IDS)))
    feed(whole, predictions)
    ranks = [COCOEvaluator(coco_gt=coco_gt, label_to_cat_id=dict(enumerate(CAT_IDS))) for _ in range(2)]
    items = list(predictions.items())
    feed(ranks[0], dict(items[1::2]))
    feed(ranks[1], dict(items[0::2]))
    ranks[0].merge(ranks[1])
    assert ranks[0].results() == whole.results()
    assert ranks[0].compute() == whole.compute()


def test_no_detections_at_all_gives_zeros() -> None:
    coco_gt = coco_api_from_dict(tiny_ground_truth())
    evaluator = COCOEvaluator(coco_gt=coco_gt, label_to_cat_id=dict(enumerate(CAT_IDS)))
    assert evaluator.compute() == dict.fromkeys(COCO_METRICS, 0.0)
    empty = {
        "boxes": torch.zeros(0, 4),
        "scores": torch.zeros(0),
        "labels": torch.zeros(0, dtype=torch.int64),
    }
    feed(evaluator, {10: empty, 20: empty})
    assert evaluator.compute() == dict.fromkeys(COCO_METRICS, 0.0) and evaluator.results() == []
    assert evaluator.report() is None


def test_report_lists_categories() -> None:
    gt = tiny_ground_truth()
    evaluator = COCOEvaluator(coco_gt=coco_api_from_dict(gt), label_to_cat_id=dict(enumerate(CAT_IDS)))
    feed(evaluator, random_predictions(gt, seed=3))
    evaluator.compute()
    console = Console(record=True, width=100)
    console.print(evaluator.report())
    text = console.export_text()
    assert all(f"class{c}" in text for c in CAT_IDS)


def test_voc_view_with_stem_ids_equals_pycocotools_and_ignores_difficult(tmp_path: Path) -> None:
    root = tmp_path / "VOCdevkit" / "VOC2007"
    (root / "Annotations").mkdir(parents=True)
    (root / "ImageSets" / "Main").mkdir(parents=True)
    objects = {
        "000001": [("dog", 1, 1, 40, 30, 0), ("cat", 50, 20, 90, 60, 1)],
        "000002": [("cat", 5, 5, 60, 60, 0)],
    }
    for stem, objs in objects.items():
        xml = "".join(
            f"<object><name>{n}</name><difficult>{d}</difficult><bndbox><xmin>{a}</xmin><ymin>{b}</ymin>"
            f"<xmax>{c}</xmax><ymax>{e}</ymax></bndbox></object>"
            for n, a, b, c, e, d in objs
        )
        size = "<size><width>100</width><height>80</height></size>"
        (root / "Annotations" / f"{stem}.xml").write_text(f"<annotation>{size}{xml}</annotation>")
    (root / "ImageSets" / "Main" / "test.txt").write_text("000001\n000002\n")
    voc = VOCDetection(root=tmp_path / "VOCdevkit", years=[2007], split="test", require_images=False)
    evaluator = COCOEvaluator(
        coco_gt=coco_api_from_dict(voc.to_coco()),
        label_to_cat_id={i: i + 1 for i in range(20)},
        image_id_map=voc.coco_image_ids,
    )
    dog, cat = voc.class_names.index("dog"), voc.class_names.index("cat")

    def boxes_of(record: VOCRecord, extra: list[list[float]]) -> dict[str, torch.Tensor]:
        boxes = record.boxes[~record.difficult].tolist() + extra
        labels = record.labels[~record.difficult].tolist() + [cat] * len(extra)
        return {"boxes": torch.tensor(boxes), "scores": torch.linspace(0.9, 0.5, len(boxes)),
                "labels": torch.tensor(labels)}  # fmt: skip

    first, second = voc.records
    # every real object found, plus a detection on the difficult cat: still perfect
    feed(evaluator, {"000001": boxes_of(first, [[49.0, 19.0, 90.0, 60.0]]), "000002": boxes_of(second, [])})
    metrics = evaluator.compute()
    assert metrics["map"] == pytest.approx(1.0) and evaluator.results()[0]["image_id"] == "000001"
    assert {r["category_id"] for r in evaluator.results()} == {dog + 1, cat + 1}
    direct = [{**r, "image_id": voc.coco_image_ids[r["image_id"]]} for r in evaluator.results()]
    assert same_coco_stats(
        list(metrics.values()), pycocotools_stats(coco_api_from_dict(voc.to_coco()), direct)
    )


def test_score_coco_results_rejects_mismatched_files(tmp_path: Path) -> None:
    ann_file = tmp_path / "gt.json"
    ann_file.write_text(json.dumps(tiny_ground_truth()))
    good = {"image_id": 10, "category_id": 3, "bbox": [0, 0, 5, 5], "score": 0.3}
    cases = [
        ({**good, "image_id": 11}, "image_id 11"),
        ({**good, "category_id": 0}, "category_id 0.*not contiguous training labels"),
        ({**good, "bbox": [0, 0, "5", 5]}, "bbox"),
        ({**good, "score": float("nan")}, "score"),
    ]
    for entry, message in cases:
        (tmp_path / "r.json").write_text(json.dumps([good, entry]))
        with pytest.raises(DataError, match=message):
            score_results(coco_truth(ann_file), tmp_path / "r.json")
    (tmp_path / "r.json").write_text(json.dumps({"not": "a list"}))
    with pytest.raises(DataError, match="JSON list"):
        score_results(coco_truth(ann_file), tmp_path / "r.json")
    (tmp_path / "r.json").write_text("[]")
    assert score_results(coco_truth(ann_file), tmp_path / "r.json") == dict.fromkeys(COCO_METRICS, 0.0)


def test_perfect_detections_on_the_real_coco_sample() -> None:
    folder = fixture_dir("coco-sample")
    dataset = COCODetection(
        ann_file=folder / "annotations.json", image_dir=folder / "images", keep_empty=False, train=False
    )
    evaluator = COCOEvaluator(coco_gt=dataset.coco, label_to_cat_id=dataset.label_to_cat_id)
    predictions = {}
    for index, image_id in enumerate(dataset.image_ids):
        _, target, meta = dataset[index]
        assert meta["image_id"] == image_id
        n = len(target["labels"])
        predictions[image_id] = {
            "boxes": target["boxes"],
            "scores": torch.ones(n),
            "labels": target["labels"],
        }
    feed(evaluator, predictions)
    metrics = evaluator.compute()
    # the crowd region of bottles and the empty image cost nothing; every category with objects is perfect
    assert metrics["map"] == pytest.approx(1.0) and metrics["map_50"] == pytest.approx(1.0)
    assert metrics["mar_100"] == pytest.approx(1.0)


def test_pr_curves_come_from_cocoeval_and_average_to_ap50() -> None:
    gt = tiny_ground_truth()
    evaluator = COCOEvaluator(coco_gt=coco_api_from_dict(gt), label_to_cat_id=dict(enumerate(CAT_IDS)))
    feed(evaluator, random_predictions(gt, seed=1))
    metrics = evaluator.compute()
    data = evaluator.plot_data()
    assert [c.name for c in data.pr_curves] == [f"class{c}" for c in CAT_IDS]
    assert all(c.recall.shape == (101,) and c.precision.shape == (101,) for c in data.pr_curves)
    # COCO's AP@0.5 is the mean over categories of the mean precision at the 101 recall thresholds
    assert np.mean([c.ap for c in data.pr_curves]) == pytest.approx(metrics["map_50"], abs=1e-12)
